// Optional TLS and mutual TLS between services, from PEM files (in
// Kubernetes, a Secret mounted as files). Without files, plaintext: local
// development and clusters whose mesh encrypts for them.
import { readFileSync } from 'node:fs';
import { credentials, ServerCredentials, type ChannelCredentials } from '@grpc/grpc-js';

export interface ServerTlsFiles {
  certFile: string;
  keyFile: string;
  /** When set, clients must present a certificate signed by this CA (mTLS). */
  clientCaFile: string;
}

export function serverCredentials(files: ServerTlsFiles): ServerCredentials {
  if (!files.certFile && !files.keyFile) return ServerCredentials.createInsecure();
  if (!files.certFile || !files.keyFile) throw new Error('TLS needs both a certificate and a key file');
  const ca = files.clientCaFile ? readFileSync(files.clientCaFile) : null;
  return ServerCredentials.createSsl(
    ca,
    [{ cert_chain: readFileSync(files.certFile), private_key: readFileSync(files.keyFile) }],
    ca !== null,
  );
}

export interface ClientTlsFiles {
  /** CA that signed the servers' certificates; empty means plaintext. */
  caFile: string;
  /** Client certificate and key for mTLS (optional). */
  certFile: string;
  keyFile: string;
}

export function channelCredentials(files: ClientTlsFiles): ChannelCredentials {
  if (!files.caFile) return credentials.createInsecure();
  return credentials.createSsl(
    readFileSync(files.caFile),
    files.keyFile ? readFileSync(files.keyFile) : null,
    files.certFile ? readFileSync(files.certFile) : null,
  );
}
