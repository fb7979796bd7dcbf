#!/usr/bin/python3
"""Checks the server's signed checkpoints (firmware-protocol/ledger-format.md, section 8.3),
written from the spec alone, with Debian's python3-cryptography.

  verify_checkpoint.py --vectors firmware-protocol/vectors/checkpoint.json
      every case of the golden file against the golden ledger of ledger.json beside it
  verify_checkpoint.py --checkpoint FILE --root HEX --entries FILE [--last-good-seq N] [--json]
      a ledger given as hex entries, one a line (sqlite3 terminal.db "SELECT hex(entry) FROM ledger ORDER BY seq"),
      whose entries 1..N verified (scripts/verify_ledger.py; default: all lines)

Exit 0 when the ledger holds the checkpoint, 4 when it is TRUNCATED, FORKED or OTHER_TERMINAL,
3 when the checkpoint itself is refused (BAD_CHECKPOINT), 2 on bad usage.
"""
import hashlib
import json
import re
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

CHECKPOINT_FORMAT = 'tallystick-checkpoint/1'
SERVER_KEY_FORMAT = 'tallystick-server-key/1'
ID = re.compile(r'^[A-Za-z0-9._-]{1,64}$')


class BadCheckpoint(Exception):
    pass


def hexfield(o, key, nbytes):
    v = o.get(key)
    if not isinstance(v, str) or not re.fullmatch('[0-9a-f]{%d}' % (2 * nbytes), v):
        raise BadCheckpoint('%s is not %d bytes of lower-case hex' % (key, nbytes))
    return v


def whole(o, key, minimum):
    v = o.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise BadCheckpoint('%s is not a whole number >= %d' % (key, minimum))
    return v


def ident(o, key):
    v = o.get(key)
    if not isinstance(v, str) or not ID.match(v):
        raise BadCheckpoint('%s is not a valid id' % key)
    return v


def signed_by(public_key_hex, text, signature_hex):
    """Ed25519 over SHA-256 of the UTF-8 text (every signature in tallystick is over SHA-256 of the bytes)"""
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex)).verify(bytes.fromhex(signature_hex), hashlib.sha256(text.encode('utf-8')).digest())
        return True
    except (InvalidSignature, ValueError):
        return False


def signed_pair(value, where):
    if not isinstance(value, dict) or not isinstance(value.get('body'), str):
        raise BadCheckpoint('%s has no body' % where)
    return value['body'], hexfield(value, 'signature', 64)


def verify_checkpoint(cp, root_hex):
    """The checkpoint's fields, or BadCheckpoint"""
    if not isinstance(cp, dict) or cp.get('format') != CHECKPOINT_FORMAT:
        raise BadCheckpoint('not a %s checkpoint' % CHECKPOINT_FORMAT)
    body, signature = signed_pair(cp, 'checkpoint')
    cert_body, cert_signature = signed_pair(cp.get('serverCertificate'), 'serverCertificate')
    try:
        cert = json.loads(cert_body)
        fields = json.loads(body)
    except ValueError:
        raise BadCheckpoint('body or certificate is not JSON')
    if not isinstance(cert, dict) or cert.get('format') != SERVER_KEY_FORMAT:
        raise BadCheckpoint('not a %s certificate' % SERVER_KEY_FORMAT)
    server_id = ident(cert, 'serverId')
    public_key = hexfield(cert, 'publicKey', 32)
    hexfield(cert, 'motherCardId', 8)
    whole(cert, 'issuedAt', 0)
    if not signed_by(root_hex, cert_body, cert_signature):
        raise BadCheckpoint('server key of %s is not certified by this root' % server_id)
    if not isinstance(fields, dict) or fields.get('format') != CHECKPOINT_FORMAT:
        raise BadCheckpoint('body is not a %s body' % CHECKPOINT_FORMAT)
    out = {
        'terminalId': ident(fields, 'terminalId'),
        'seq': whole(fields, 'seq', 1),
        'headHash': hexfield(fields, 'headHash', 32),
        'time': whole(fields, 'time', 0),
        'serverId': ident(fields, 'serverId'),
    }
    if out['serverId'] != server_id:
        raise BadCheckpoint('body names server %s, its certificate %s' % (out['serverId'], server_id))
    if not signed_by(public_key, body, signature):
        raise BadCheckpoint('not signed by the key of server %s' % server_id)
    return out


def check_ledger(entry_hashes, last_good_seq, terminal_id, fields):
    """entry_hashes: hex SHA-256 of each entry in seq order; last_good_seq: up to where they verified"""
    verdict = {'ok': True, 'lastGoodSeq': last_good_seq, 'seq': fields['seq'], 'serverId': fields['serverId']}
    if terminal_id is not None and terminal_id != fields['terminalId']:
        verdict.update(ok=False, problem={'code': 'OTHER_TERMINAL', 'seq': fields['seq']})
    elif last_good_seq < fields['seq']:
        verdict.update(ok=False, problem={'code': 'TRUNCATED', 'seq': last_good_seq + 1})
    elif entry_hashes[fields['seq'] - 1] != fields['headHash']:
        verdict.update(ok=False, problem={'code': 'FORKED', 'seq': fields['seq']})
    return verdict


def check_vectors(path):
    vectors = json.load(open(path))
    ledger = json.load(open(path.replace('checkpoint.json', 'ledger.json')))
    root = vectors['rootPublicKey']
    hashes = [hashlib.sha256(bytes.fromhex(e['hex'])).hexdigest() for e in ledger['ledger']['entries']]
    terminal = ledger['ledger']['verdict']['terminalId']
    failures = 0
    for case in vectors['cases']:
        length = case.get('ledgerLength', len(hashes))
        got = check_ledger(hashes[:length], length, terminal, verify_checkpoint(case['checkpoint'], root))
        expected = case['verdict']
        same = got['ok'] == expected['ok'] and got['lastGoodSeq'] == expected['lastGoodSeq'] and got.get('problem') == expected.get('problem')
        print('%s %s' % ('ok  ' if same else 'FAIL', case['name']))
        failures += 0 if same else 1
    for case in vectors['invalid']:
        try:
            verify_checkpoint(case['checkpoint'], root)
            refused = False
        except BadCheckpoint:
            refused = True
        print('%s refuses %s' % ('ok  ' if refused else 'FAIL', case['name']))
        failures += 0 if refused else 1
    print('%d cases, %d failures' % (len(vectors['cases']) + len(vectors['invalid']), failures))
    return 1 if failures else 0


def main(argv):
    args = dict(zip(argv[1::2], argv[2::2]))
    if argv[1:2] == ['--vectors'] and len(argv) == 3:
        return check_vectors(argv[2])
    as_json = '--json' in argv
    argv = [a for a in argv if a != '--json']
    args = dict(zip(argv[1::2], argv[2::2]))
    if not {'--checkpoint', '--root', '--entries'} <= set(args):
        sys.stderr.write(__doc__)
        return 2
    lines = [line.strip() for line in open(args['--entries']) if line.strip()]
    hashes = [hashlib.sha256(bytes.fromhex(line)).hexdigest() for line in lines]
    last_good = int(args.get('--last-good-seq', len(lines)))
    try:
        fields = verify_checkpoint(json.load(open(args['--checkpoint'])), args['--root'].lower())
    except (BadCheckpoint, ValueError) as err:
        print(json.dumps({'ok': False, 'code': 'BAD_CHECKPOINT', 'problem': str(err)}) if as_json else 'BAD_CHECKPOINT: %s' % err)
        return 3
    verdict = check_ledger(hashes, last_good, args.get('--terminal'), fields)
    if as_json:
        print(json.dumps(verdict))
    elif verdict['ok']:
        print('the ledger holds the checkpoint of server %s: seq %d' % (fields['serverId'], fields['seq']))
    else:
        print('%s at seq %d (last good seq %d)' % (verdict['problem']['code'], verdict['problem']['seq'], last_good))
    return 0 if verdict['ok'] else 4


if __name__ == '__main__':
    sys.exit(main(sys.argv))
