/**
 * The ingest server's settings (`tally server run --config FILE`): every flag of
 * tally server run once, with its meaning and bounds, as one TypeBox schema
 * (schemas/server-config.schema.json is it for editors; serverConfig.ts reads
 * it). A setting's `flag` names the option that sets it on the command line.
 */
import type { Static } from '@sinclair/typebox';
import { LOG_LEVELS, Section, Setting as S, withFlag as flag } from './schema.js';

export const SERVER_SETTINGS = Section({
  server: Section({
    store: flag('store', S.text('the store: a SQLite file (or sqlite:FILE) or a PostgreSQL URL (postgres://...)')),
    root: flag('root', S.text('the investor root public key, 64 hex digits')),
    rootFile: flag('root-file', S.text('a file holding the investor root public key (instead of server.root)')),
    signatureCheck: flag('signature-check', S.oneOf(['chain-anchored', 'every-entry'], "chain-anchored checks each hash-linked run's last signature before storing and every entry's in a background audit; every-entry checks each before storing (about a quarter of the ingest rate)", 'chain-anchored')),
    workerThreads: flag('worker-threads', S.integer('threads that parse and verify reports (default: one per CPU; 0: on the main thread)', { min: 0, max: 64 })),
    signingKey: flag('signing-key', S.text('the server signing key file (tally server certify-key): acks carry signed checkpoints, and it signs settlement vouchers')),
    voucherKey: flag('voucher-key', S.text('the voucher key file (tally server voucher certify-key): the HTTP API signs vouchers and terminals get the trust list')),
  }),
  mqtt: Section({
    brokerUrl: flag('broker', S.text('the MQTT broker the terminals report to (mqtts:// with mutual TLS in production)')),
    protocolVersion: flag('mqtt', S.integer('MQTT 5, or 4 for 3.1.1 brokers', { default: 5, min: 4, max: 5 })),
    sharedGroup: flag('shared-group', S.text('a shared subscription group: several servers with the same group share the load')),
    clientId: flag('client-id', S.text("this server's MQTT client id")),
    tls: Section({
      ca: flag('ca', S.text('CA certificate file that signed the broker certificate')),
      cert: flag('cert', S.text("this server's client certificate file")),
      key: flag('key', S.text("this server's client key file")),
    }),
  }),
  http: Section({
    port: flag('http-port', S.integer('the report API and the console on 127.0.0.1 at this port (0: any free port)', { min: 0, max: 65_535 })),
    httpsProxy: flag('https-proxy', S.boolean('browsers reach the console through an HTTPS proxy on this machine (the session cookie is then Secure)', false)),
    adminTokenFile: flag('admin-token-file', S.text("a file holding the bearer token of the administrator's registry writes (or TALLY_ADMIN_TOKEN); without one they are refused")),
  }),
  insurance: Section({
    url: flag('insurance-url', S.text("the insurance platform (tally sim insurance, or a platform adapter's endpoint); needs http.port and server.signingKey")),
    baseUrl: flag('insurance-base-url', S.text('where phones reach the server (default http://127.0.0.1:PORT)')),
    timing: flag('insurance-timing', S.text("CODE,POLL,VOUCHER,GRACE,SWEEP in seconds (default 300,5,600,600,30): a QR code's life, the poll interval, a voucher's life, the wait past a voucher's expiry before an unused one is reversed, the sweep's period; an empty field keeps its default")),
  }),
  pki: Section({
    dir: flag('pki', S.text('the TLS CA of tally pki: certificates of retired terminals are revoked, the CRL kept fresh')),
    caPassphraseFile: flag('ca-passphrase-file', S.text("a file holding the TLS CA key's passphrase (or TALLY_CA_PASSPHRASE)")),
    revocationCheckMs: flag('revocation-check-ms', S.integer('how often the registry is checked for retired terminals', { default: 5000, min: 1, max: 86_400_000 })),
    brokerPidFile: flag('broker-pid-file', S.text("the broker's pid file: it gets SIGHUP to reread its CRL")),
    est: Section({
      port: flag('est-port', S.integer('serve EST (RFC 7030) over HTTPS at this port', { min: 0, max: 65_535 })),
      host: flag('est-host', S.text('the address EST listens on', { default: '127.0.0.1' })),
      cert: flag('est-cert', S.text("EST's HTTPS certificate file (tally pki issue server)")),
      key: flag('est-key', S.text("EST's HTTPS key file")),
    }),
  }),
  log: Section({
    level: S.oneOf(LOG_LEVELS, 'log level', 'info'),
  }),
});

export type ServerSettings = Static<typeof SERVER_SETTINGS>;
