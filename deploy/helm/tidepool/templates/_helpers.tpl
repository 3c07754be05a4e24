{{- define "tidepool.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tidepool.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The selector labels of one component: include with (list $ "worker"). */}}
{{- define "tidepool.selector" -}}
app.kubernetes.io/name: {{ (index . 0).Chart.Name }}
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "tidepool.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* "true" when the webhook's certificate comes from cert-manager, "" when Helm generates it. */}}
{{- define "tidepool.certManager" -}}
{{- $source := .Values.webhook.certificate.source -}}
{{- if eq $source "certManager" -}}true
{{- else if eq $source "auto" -}}{{ if .Capabilities.APIVersions.Has "cert-manager.io/v1" }}true{{ end }}
{{- else if ne $source "generated" -}}{{ fail (printf "webhook.certificate.source must be auto, certManager or generated, not %q" $source) }}
{{- end -}}
{{- end -}}

{{- define "tidepool.temporalTls" -}}
{{- $t := .Values.temporal -}}
{{- if or $t.tls.enabled $t.tls.serverName $t.tls.caSecret $t.tls.clientCertSecret $t.apiKey.secretName }}true{{ end -}}
{{- end -}}

{{/* The Temporal connection environment of the worker and the agent (read by src/config.ts). */}}
{{- define "tidepool.temporalEnv" -}}
{{- $t := .Values.temporal -}}
- name: TEMPORAL_ADDRESS
  value: {{ $t.address | quote }}
- name: TEMPORAL_NAMESPACE
  value: {{ $t.namespace | quote }}
- name: TIDEPOOL_TASK_QUEUE
  value: {{ $t.taskQueue | quote }}
{{- if include "tidepool.temporalTls" . }}
- name: TEMPORAL_TLS
  value: "true"
{{- end }}
{{- with $t.tls.serverName }}
- name: TEMPORAL_TLS_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
{{- if $t.tls.caSecret }}
- name: TEMPORAL_TLS_CA_FILE
  value: /etc/tidepool/temporal-ca/ca.crt
{{- end }}
{{- if $t.tls.clientCertSecret }}
- name: TEMPORAL_TLS_CERT_FILE
  value: /etc/tidepool/temporal-client/tls.crt
- name: TEMPORAL_TLS_KEY_FILE
  value: /etc/tidepool/temporal-client/tls.key
{{- end }}
{{- if $t.apiKey.secretName }}
- name: TEMPORAL_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $t.apiKey.secretName }}
      key: {{ $t.apiKey.secretKey }}
{{- end }}
{{- end -}}

{{- define "tidepool.temporalVolumeMounts" -}}
{{- if .Values.temporal.tls.caSecret }}
- name: temporal-ca
  mountPath: /etc/tidepool/temporal-ca
  readOnly: true
{{- end }}
{{- if .Values.temporal.tls.clientCertSecret }}
- name: temporal-client
  mountPath: /etc/tidepool/temporal-client
  readOnly: true
{{- end }}
{{- end -}}

{{- define "tidepool.temporalVolumes" -}}
{{- with .Values.temporal.tls.caSecret }}
- name: temporal-ca
  secret:
    secretName: {{ . }}
    items: [{ key: ca.crt, path: ca.crt }]
{{- end }}
{{- with .Values.temporal.tls.clientCertSecret }}
- name: temporal-client
  secret:
    secretName: {{ . }}
    items: [{ key: tls.crt, path: tls.crt }, { key: tls.key, path: tls.key }]
{{- end }}
{{- end -}}

{{- define "tidepool.restrictedSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
