import http from 'node:http';
import https from 'node:https';

export interface HttpAnswer {
  status: number;
  body: string;
}

/** One request with `body`, read to its end; a 20 s silence fails it as a hang. */
export function exchange(options: https.RequestOptions, body: string | Buffer): Promise<HttpAnswer> {
  const send = options.ca === undefined ? http.request : https.request;
  const what = `${options.method} ${options.path}`;
  return new Promise((resolve, reject) => {
    const request = send({ ...options, timeout: 20_000 }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    request.on('timeout', () => request.destroy(new Error(`no answer to ${what} within 20 s`)));
    request.on('error', reject);
    request.end(body);
  });
}
