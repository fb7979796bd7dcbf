/** A unix socket only the daemon's own account can reach (mode 0600): the status and insurance sockets. */
import { chmodSync } from 'node:fs';
import type { Server } from 'node:net';

export async function listenPrivate(server: Server, path: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
}

export function closeServer(server: Server | undefined): Promise<void> {
  return server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
}
