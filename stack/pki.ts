import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { StackPaths } from './config.ts';

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`openssl ${args[0]} failed: ${stderr.trim() || String(error)}`, { cause: error });
  }
}

/**
 * Creates the stack's PKI once: a self-signed CA, one serving certificate for 127.0.0.1/localhost (used by
 * kube-apiserver, kube-controller-manager and the webhook), the service-account signing key and an admin
 * token in the system:masters group. Existing files are kept so that `up` after `down` reuses them.
 */
export function ensurePki(paths: StackPaths): void {
  mkdirSync(paths.pki, { recursive: true, mode: 0o700 });
  const cwd = paths.pki;
  if (!existsSync(paths.caCert)) {
    openssl(
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', paths.caKey, '-out', paths.caCert,
        '-days', '3650', '-subj', '/CN=tidepool-local-ca'],
      cwd,
    );
  }
  if (!existsSync(paths.servingCert)) {
    const csr = path.join(cwd, 'serving.csr');
    const ext = path.join(cwd, 'serving.ext');
    writeFileSync(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', paths.servingKey, '-out', csr, '-subj', '/CN=localhost'], cwd);
    openssl(
      ['x509', '-req', '-in', csr, '-CA', paths.caCert, '-CAkey', paths.caKey, '-CAcreateserial',
        '-out', paths.servingCert, '-days', '3650', '-extfile', ext],
      cwd,
    );
  }
  if (!existsSync(paths.serviceAccountKey)) {
    openssl(['genrsa', '-out', paths.serviceAccountKey, '2048'], cwd);
  }
  if (!existsSync(paths.tokens)) {
    const token = randomBytes(24).toString('hex');
    writeFileSync(paths.adminToken, token, { mode: 0o600 });
    writeFileSync(paths.tokens, `${token},admin,admin,"system:masters"\n`, { mode: 0o600 });
  }
}

export function adminToken(paths: StackPaths): string {
  return readFileSync(paths.adminToken, 'utf8').trim();
}
