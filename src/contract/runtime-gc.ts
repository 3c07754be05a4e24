// The contract of the runtime's GC (CNI GC, spec 1.1.0): what the agent asks the `runtimeGc` workflow, what
// its activities plan and hand to the pods' lifecycles, and what the agent gets back.

/** One attachment as `cni.dev/valid-attachments` lists it, with the interface named as everywhere else. */
export interface GcAttachment {
  containerID: string;
  interface: string;
}

export interface RuntimeGcInput {
  /** The CNI network (the configuration's `name`). */
  network: string;
  node: string;
  validAttachments: GcAttachment[];
}

/** An attachment of this network on this node that the runtime no longer lists, with its records. */
export interface StaleAttachment extends GcAttachment {
  namespace: string;
  pod: string;
  podUID: string;
  ips: { ip: string; pool: string }[];
}

export interface RuntimeGcPlan {
  stale: StaleAttachment[];
  /** Unlisted attachments left alone because a record is younger than the minimum record age. */
  tooYoung: number;
  /** Epoch ms: an ADD after this is too recent for this GC to undo. */
  allocatedBefore: number;
}

export interface RuntimeGcResult {
  network: string;
  node: string;
  validAttachments: number;
  /** The stale attachments handed to their lifecycles. */
  stale: number;
  tooYoung: number;
  /** The IPs whose records were released. */
  released: string[];
}

/** `runtimeGc` in src/workflows: one runtime GC of one network on one node. */
export type RuntimeGcWorkflow = (input: RuntimeGcInput) => Promise<RuntimeGcResult>;
