/**
 * Connects an mqtt.js client to an mqtt:// or mqtts:// broker with our own
 * stream builder. mqtt.connect() loads every transport it knows at the first
 * connection (WebSocket, SOCKS proxy, ...): about 1 MB of heap that an idle
 * terminal would hold for nothing. Any other scheme (ws://, wss://) still goes
 * through mqtt.connect.
 */
import { isIP, createConnection } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { readFileSync } from 'node:fs';
import mqtt, { MqttClient, type IClientOptions } from 'mqtt';

const PLAIN = new Set(['mqtt:', 'tcp:']);
const SECURE = new Set(['mqtts:', 'tls:', 'ssl:']);

/** PEM files (paths) that are read again at each connection: a renewed certificate needs no restart */
export interface TlsFiles {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
}

function readTlsFiles(files: TlsFiles | undefined): { ca?: Buffer; cert?: Buffer; key?: Buffer } {
  if (!files) return {};
  return {
    ...(files.ca ? { ca: readFileSync(files.ca) } : {}),
    ...(files.cert ? { cert: readFileSync(files.cert) } : {}),
    ...(files.key ? { key: readFileSync(files.key) } : {}),
  };
}

export function connectMqtt(brokerUrl: string, options: IClientOptions, tlsFiles?: TlsFiles): MqttClient {
  if (tlsFiles) options = { ...readTlsFiles(tlsFiles), ...options };
  let url: URL;
  try {
    url = new URL(brokerUrl);
  } catch {
    return mqtt.connect(brokerUrl, options);
  }
  const plain = PLAIN.has(url.protocol);
  // as mqtt.connect does: a client certificate and key turn mqtt:// into mqtts://
  const secure = SECURE.has(url.protocol) || (plain && options.cert !== undefined && options.key !== undefined);
  if (!plain && !secure) return mqtt.connect(brokerUrl, options);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1') || 'localhost';
  const port = url.port ? Number(url.port) : secure ? 8883 : 1883;
  const auth = url.username ? { username: decodeURIComponent(url.username), ...(url.password ? { password: decodeURIComponent(url.password) } : {}) } : {};
  const opts: IClientOptions = { ...auth, ...options, host, port, protocol: secure ? 'mqtts' : 'mqtt' };
  const client = new MqttClient((c) => {
    if (!secure) return createConnection({ host, port });
    const rejectUnauthorized = opts.rejectUnauthorized !== false;
    const socket = tlsConnect({
      ...(opts as object),
      ...readTlsFiles(tlsFiles),
      host,
      port,
      rejectUnauthorized,
      ...(isIP(host) === 0 && !opts.servername ? { servername: host } : {}),
    });
    // mqtt.js's TLS builder: an unauthorized peer is an error on the client, and the socket ends
    const onError = (err: Error): void => {
      if (rejectUnauthorized) c.emit('error', err);
      socket.end();
    };
    socket.on('error', onError);
    socket.on('secureConnect', () => {
      if (rejectUnauthorized && !socket.authorized) socket.emit('error', new Error('TLS not authorized'));
      else socket.removeListener('error', onError);
    });
    return socket;
  }, opts);
  // as mqtt.connect does: errors are reported through the client's listeners, never thrown unhandled
  client.on('error', () => undefined);
  return client;
}
