#!/usr/bin/python3
"""The second verifier of a tallystick ledger, written from firmware-protocol/ledger-format.md alone
(and the records of card-applet.md), with the Python standard library and Debian's python3-cryptography.

  verify_ledger.py --db terminal.db (--root HEX | --root-fingerprint HEX) [--checkpoint FILE] [--json]
      a terminal's SQLite ledger, read-only (SELECT entry FROM ledger ORDER BY seq, nothing else);
      --root-fingerprint takes the root key the database holds only if its SHA-256 is HEX
  verify_ledger.py --entries FILE --root HEX [--checkpoint FILE] [--json]
      the entries as hex, one a line (sqlite3 terminal.db "SELECT hex(entry) FROM ledger ORDER BY seq")
  verify_ledger.py --vectors firmware-protocol/vectors/ledger.json
      the golden ledger and every tampered variant against their recorded verdicts
  verify_ledger.py --many FILE
      FILE is {"root": HEX, "ledgers": [[HEX entry, ...], ...]}: prints a JSON list, one verdict per ledger
      (for tests that compare many ledgers with the other verifier)
  verify_ledger.py --bundle FILE (--root HEX | --root-fingerprint HEX) [--json]
      an audit bundle (firmware-protocol/audit-bundle.md, format 3, or format 2 by its own rules): its ledger,
      checkpoint, the server's signed statement and its account (uses by what paid for them: card, voucher,
      insurance settlement; per day; card uses per batch; the income split of the card and voucher uses)
  verify_ledger.py --bundle-vectors firmware-protocol/vectors/audit-bundle.json
      every golden bundle and comparison against its recorded verdict
  verify_ledger.py --compare TERMINAL_BUNDLE --with SERVER_BUNDLE (--root HEX | --root-fingerprint HEX) [--json]
      both bundles verified, then side by side (audit-bundle.md section 4): the entries one half lacks or holds
      differently, the uses charged each side (card and voucher; insurance uses apart) and the money at the server
      statement's price and shares
  verify_ledger.py --many-bundles FILE
      FILE is {"root": HEX, "bundles": [BUNDLE, ...]}: a JSON list, the verdict summary of each bundle
  verify_ledger.py --many-db FILE
      FILE is {"root": HEX, "checkpoint": FILE or null, "dbs": [PATH, ...]}: a JSON list, the --json verdict of each

Prints the verdict of section 7 (--json: the same JSON fields as tally ledger verify --json).
Exit 0 intact, 4 broken (any rule, DATABASE_UNREADABLE, or the checkpoint's TRUNCATED/FORKED),
3 the checkpoint itself is refused (BAD_CHECKPOINT) or the bundle is unreadable (BAD_AUDIT_BUNDLE), 2 bad usage.
--help prints this text.
"""
import datetime
import hashlib
import json
import os
import re
import sqlite3
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

GENESIS = bytes(32)
CLOCK_FLOOR_MS = 1767225600000  # 2026-01-01T00:00:00Z
CLOCK_SLACK_MS = 1000
MAX_SAFE = 2 ** 53 - 1

PROVISIONED, BATCH_LOADED, USE_RESERVED, USE_STARTED, USE_COMPLETED, USE_RELEASED, USE_FAILED, WITNESS_ROLLBACK = range(1, 9)
TERMINAL_SETTING = 9  # section 3: detail name=value
CLOCK_RESET, CLOCK_REFUSED = 10, 11
VOUCHER_RESERVED = 12  # voucher-format.md section 8
SETTLEMENT_RESERVED = 14  # settlement-voucher.md
ENTRY_TYPES = set(range(1, 10)) | {CLOCK_RESET, CLOCK_REFUSED, VOUCHER_RESERVED, SETTLEMENT_RESERVED}
SETTINGS = {'cards.acceptVersion1': ('true', 'false')}
CARD_AUTH_DOMAIN = b'TALLYSTK-AUTH-02'  # card-applet.md, INTERNAL AUTHENTICATE
CLOCK_RESET_FORMAT = 'tallystick-clock-reset/1'
USE_EVENTS = {  # type: (state it moves to, states it may follow)
    USE_STARTED: ('started', ('reserved',)),
    USE_COMPLETED: ('completed', ('started',)),
    USE_FAILED: ('failed', ('started',)),
    USE_RELEASED: ('released', ('reserved',)),
}

# Records (card-applet.md "Records"): kind -> the fields after 01 version, 02 kind, 03 card id, 04 issued at
MOTHER, WHITE, BATCH, ONE_TIME, TERMINAL = 1, 2, 3, 4, 16
KEY32, U32, CLINIC, NAME, RECORD = 'key32', 'u32', 'clinic', 'name', 'record'
RECORD_FIELDS = {
    MOTHER: [(0x10, 'publicKey', KEY32), (0x11, 'investor', NAME)],
    WHITE: [(0x10, 'publicKey', KEY32), (0x13, 'quota', U32), (0x15, 'validUntil', U32)],
    BATCH: [(0x10, 'publicKey', KEY32), (0x20, 'clinicCode', CLINIC), (0x21, 'batchNo', U32), (0x22, 'count', U32),
            (0x14, 'validFrom', U32), (0x15, 'validUntil', U32), (0x25, 'issuer', RECORD)],
    ONE_TIME: [(0x26, 'batchId', 'id8'), (0x27, 'serial', U32)],
    TERMINAL: [(0x10, 'publicKey', KEY32), (0x30, 'terminalId', NAME), (0x20, 'clinicCode', CLINIC)],
}
CARD_KEY_KINDS = (BATCH, ONE_TIME)  # record version 2 adds 18 card key (65 bytes, 04...) before the signature


class Malformed(Exception):
    pass


def tlvs(data):
    """[(tag, value, start offset)], section 1: one-byte tag, minimal BER length, nothing left over"""
    out, i = [], 0
    while i < len(data):
        start, tag = i, data[i]
        if i + 1 >= len(data):
            raise Malformed('TLV without a length at byte %d' % i)
        first = data[i + 1]
        i += 2
        if first < 0x80:
            length = first
        elif first == 0x81:
            if i >= len(data) or data[i] < 0x80:
                raise Malformed('bad or non-minimal 81 length at byte %d' % start)
            length, i = data[i], i + 1
        elif first == 0x82:
            if i + 2 > len(data) or data[i] == 0:
                raise Malformed('bad or non-minimal 82 length at byte %d' % start)
            length, i = (data[i] << 8) | data[i + 1], i + 2
        else:
            raise Malformed('length form %02x at byte %d' % (first, start))
        if i + length > len(data):
            raise Malformed('value of tag %02x runs past the end' % tag)
        out.append((tag, data[i:i + length], start))
        i += length
    return out


def text(value, low, high, what):
    if not low <= len(value) <= high:
        raise Malformed('%s is %d bytes, not %d..%d' % (what, len(value), low, high))
    try:
        return value.decode('utf-8')
    except UnicodeDecodeError:
        raise Malformed('%s is not UTF-8' % what)


def u64(value, what):
    if len(value) != 8:
        raise Malformed('%s is not 8 bytes' % what)
    n = int.from_bytes(value, 'big')
    if n > MAX_SAFE:
        raise Malformed('%s above 2^53-1' % what)
    return n


def parse_entry(raw):
    """Section 2: the fields of one entry, its body (the bytes before 7F 40) and its signature"""
    items = tlvs(raw)
    fixed = [0x01, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45]
    if len(items) < len(fixed) + 1 or [t for t, _, _ in items[:7]] != fixed:
        raise Malformed('tags 01 40 41 42 43 44 45 are not first, in that order')
    v = [value for _, value, _ in items]
    if v[0] != b'\x01':
        raise Malformed('entry version is not 01')
    if len(v[2]) != 32 or len(v[3]) != 1 or len(v[5]) != 1:
        raise Malformed('prev hash, type or clock byte of the wrong length')
    if v[3][0] not in ENTRY_TYPES:
        raise Malformed('unknown entry type %d' % v[3][0])
    if v[5][0] not in (0, 1):
        raise Malformed('clock byte %d' % v[5][0])
    entry = {'seq': u64(v[1], 'seq'), 'prevHash': v[2], 'type': v[3][0], 'time': u64(v[4], 'time'),
             'clockTrusted': v[5][0] == 1, 'terminalId': text(v[6], 1, 255, 'terminal id')}
    optional = [(0x46, 'card'), (0x49, 'chipUid'), (0x47, 'ref'), (0x48, 'detail'), (0x4A, 'cardChallenge'), (0x4B, 'cardAnswer')]
    index = 7
    for tag, name in optional:
        if index < len(items) and items[index][0] == tag:
            value = items[index][1]
            if tag == 0x46:
                if not value:
                    raise Malformed('empty card field')
                entry['card'] = value
            elif tag == 0x49:
                if len(value) != 8:
                    raise Malformed('chip UID is not 8 bytes')
                entry['chipUid'] = value
            elif tag == 0x47:
                entry['ref'] = u64(value, 'ref')
            elif tag == 0x48:
                entry['detail'] = text(value, 0, 200, 'detail')
            elif tag == 0x4A:
                if len(value) != 24:
                    raise Malformed('card challenge is not 24 bytes')
                entry['cardChallenge'] = value
            else:
                if not 1 <= len(value) <= 72:
                    raise Malformed('card answer is not 1..72 bytes')
                entry['cardAnswer'] = value
            index += 1
    if ('cardChallenge' in entry) != ('cardAnswer' in entry):
        raise Malformed('a card challenge without its answer, or an answer without its challenge')
    if index != len(items) - 1:
        raise Malformed('unexpected tag %02x, or a tag out of order, before the signature' % items[index][0])
    tag, signature, start = items[index]
    if tag != 0x7F or len(signature) != 64:
        raise Malformed('the last TLV is not a 64-byte signature 7F')
    entry['body'], entry['signature'] = raw[:start], signature
    return entry


def parse_record(raw):
    """card-applet.md "Records": strict order, every field of the kind, nothing after the signature"""
    items = tlvs(raw)
    if len(items) < 4 or [t for t, _, _ in items[:4]] != [0x01, 0x02, 0x03, 0x04]:
        raise Malformed('record does not start 01 02 03 04')
    version, kind = items[0][1], items[1][1]
    if len(kind) != 1 or kind[0] not in RECORD_FIELDS:
        raise Malformed('unknown record kind')
    kind = kind[0]
    if version not in (b'\x01', b'\x02') or (version == b'\x02' and kind not in CARD_KEY_KINDS):
        raise Malformed('record version %s for kind %d' % (version.hex(), kind))
    if len(items[2][1]) != 8 or len(items[3][1]) != 4:
        raise Malformed('card id or issued-at of the wrong length')
    record = {'kind': kind, 'cardId': items[2][1], 'issuedAt': int.from_bytes(items[3][1], 'big')}
    specs = list(RECORD_FIELDS[kind]) + ([(0x18, 'cardKey', 'cardKey')] if version == b'\x02' else [])
    if len(items) != 4 + len(specs) + 1:
        raise Malformed('record of kind %d has %d TLVs' % (kind, len(items)))
    for (tag, name, form), (got, value, _) in zip(specs, items[4:]):
        if got != tag:
            raise Malformed('record of kind %d: tag %02x where %02x belongs' % (kind, got, tag))
        if form == KEY32 and len(value) != 32 or form == 'id8' and len(value) != 8 or form == U32 and len(value) != 4:
            raise Malformed('record field %s of the wrong length' % name)
        if form == 'cardKey' and (len(value) != 65 or value[0] != 4):
            raise Malformed('card key is not an uncompressed P-256 point')
        if form == RECORD and not value:
            raise Malformed('empty issuer record')
        if form == CLINIC:
            value = text(value, 1, 16, name)
        elif form == NAME:
            value = text(value, 1, 32, name)
        elif form == U32:
            value = int.from_bytes(value, 'big')
        record[name] = value
    tag, signature, start = items[-1]
    if tag != 0x7F or len(signature) != 64:
        raise Malformed('record does not end with a 64-byte signature')
    record['body'], record['signature'] = raw[:start], signature
    return record


def voucher_use(card, root):
    """voucher-format.md sections 2, 3 and 8: key certificate || voucher; the serial of a voucher the root's key signed"""
    if len(card) < 46:
        raise Malformed('voucher use shorter than a key certificate')
    cert_length = 46 + card[45] + 64
    cert, voucher = card[:cert_length], card[cert_length:]
    if len(cert) != cert_length or cert[0] != 0x4B or cert[1] != 1 or not 1 <= card[45] <= 32:
        raise Malformed('not a version 1 voucher key certificate')
    if not signed_by(root, cert[:-64], cert[-64:]):
        raise Malformed('voucher key certificate not signed by the root')
    key_id, roles, public_key = int.from_bytes(cert[2:4], 'big'), cert[4], cert[13:45]
    if not roles & 1:
        raise Malformed('key %d is not certified to sign vouchers' % key_id)
    if len(voucher) < 88 or voucher[0] != 0x56 or voucher[1] != 1:
        raise Malformed('not a version 1 voucher')
    if int.from_bytes(voucher[2:4], 'big') != key_id:
        raise Malformed('voucher names another key than its certificate')
    if not signed_by(public_key, voucher[:-64], voucher[-64:]):
        raise Malformed('voucher not signed by its key')
    serial = int.from_bytes(voucher[4:10], 'big')
    if serial == 0:
        raise Malformed('voucher serial 0')
    return serial


def signed_by(public_key, body, signature):
    """Section 1: every signature is Ed25519 over SHA-256 of the signed bytes"""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, hashlib.sha256(body).digest())
        return True
    except (InvalidSignature, ValueError):
        return False


class Broken(Exception):
    def __init__(self, seq, code, problem):
        Exception.__init__(self, problem)
        self.seq, self.code, self.problem = seq, code, problem


def verify(entries, root, unreadable=None):
    """Section 7 over raw entries in seq order; unreadable: why the database could not be read past them"""
    state = {'entries': 0, 'lastSeq': 0, 'headHash': GENESIS.hex(), 'uses': 0, 'releases': 0, 'untrustedClock': 0}
    cert = None
    latest_time = 0
    clock = {'refused': None, 'hashes': {}}  # the last clock.refused seq since the last reset, the entry hashes from it on
    batches = {}          # batch card id -> batch record
    state['_settings'] = {}  # name -> value of the last terminal.setting entry (section 3); dropped from the verdict
    uses = {}             # seq of use.reserved -> [state, (batch id, serial)]
    held = set()          # (batch id, serial) of uses not released
    prev_hash = GENESIS
    try:
        for raw in entries:
            seq = state['lastSeq'] + 1
            try:
                e = parse_entry(raw)
            except Malformed as err:
                raise Broken(seq, 'MALFORMED', 'entry does not parse: %s' % err)
            if e['seq'] > seq:
                raise Broken(seq, 'GAP', 'gap: next entry is seq %d' % e['seq'])
            if e['seq'] < seq:
                raise Broken(seq, 'OUT_OF_ORDER', 'out of order: seq %d repeated or moved' % e['seq'])
            if e['prevHash'] != prev_hash:
                raise Broken(seq, 'CHAIN_BROKEN', 'prev hash is not the hash of entry %d' % (seq - 1))
            if seq == 1:
                if e['type'] != PROVISIONED or 'card' not in e:
                    raise Broken(1, 'FIRST_NOT_PROVISIONING', 'entry 1 is not a provisioned entry with a certificate')
                try:
                    c = parse_record(e['card'])
                except Malformed as err:
                    raise Broken(1, 'CERTIFICATE_INVALID', 'terminal certificate does not parse: %s' % err)
                if c['kind'] != TERMINAL or not signed_by(root, c['body'], c['signature']):
                    raise Broken(1, 'CERTIFICATE_INVALID', 'not a terminal certificate signed by this root')
                cert = c
                state['terminalId'] = c['terminalId']
            if not signed_by(cert['publicKey'], e['body'], e['signature']):
                raise Broken(seq, 'SIGNATURE_INVALID', 'not signed by the device key of the terminal certificate')
            if e['terminalId'] != cert['terminalId']:
                raise Broken(seq, 'TERMINAL_MISMATCH', 'entry names terminal %s' % e['terminalId'])
            reset = e['type'] == CLOCK_RESET
            # section 6: the mark is the latest trusted time since the last clock.reset; a proven reset may go back
            if e['clockTrusted'] and (e['time'] < CLOCK_FLOOR_MS or (not reset and e['time'] + CLOCK_SLACK_MS < latest_time)):
                raise Broken(seq, 'CLOCK_FLAG', 'clock marked trusted at %d ms (floor %d, latest before %d)' % (e['time'], CLOCK_FLOOR_MS, latest_time))
            if reset:
                check_clock_reset(seq, e, cert, root, prev_hash, clock)
            check_meaning(seq, e, cert, root, batches, uses, held, state)
            if reset:
                latest_time = e['time']
                clock.update(refused=None, hashes={})
            elif e['clockTrusted']:
                latest_time = max(latest_time, e['time'])
            if not e['clockTrusted']:
                state['untrustedClock'] += 1
            prev_hash = hashlib.sha256(raw).digest()
            if e['type'] == CLOCK_REFUSED:
                clock.update(refused=seq, hashes={})
            if clock['refused'] is not None:
                clock['hashes'][seq] = prev_hash.hex()
            state.update(entries=state['entries'] + 1, lastSeq=seq, headHash=prev_hash.hex())
        if unreadable is not None:
            raise Broken(state['lastSeq'] + 1, 'DATABASE_UNREADABLE', 'database unreadable after %d entries: %s' % (state['entries'], unreadable))
        if state['entries'] == 0:
            raise Broken(1, 'EMPTY', 'the ledger has no entries')
    except Broken as b:
        return dict(public(state), ok=False, problem={'seq': b.seq, 'code': b.code, 'problem': b.problem})
    return dict(public(state), ok=True)


def public(state):
    return {k: v for k, v in state.items() if not k.startswith('_')}


def check_card_auth(seq, e, record, cert, settings):
    """Section 7: a version 2 card's entry carries the challenge (this terminal's tag || nonce) and the card's
    answer, an ECDSA P-256/SHA-256 DER signature by the card key of its record; a version 1 card's carries neither
    and is allowed unless the last terminal.setting says cards.acceptVersion1=false"""
    if 'cardKey' not in record:
        if 'cardChallenge' in e:
            raise Broken(seq, 'CARD_AUTH_INVALID', 'a version 1 card with a card answer')
        if settings.get('cards.acceptVersion1') is False:
            raise Broken(seq, 'VERSION1_NOT_ALLOWED', 'a version 1 card accepted while cards.acceptVersion1=false')
        return
    if 'cardChallenge' not in e:
        raise Broken(seq, 'CARD_AUTH_INVALID', 'a version 2 card without its challenge and answer')
    challenge = e['cardChallenge']
    if challenge[:8] != hashlib.sha256(cert['terminalId'].encode('utf-8')).digest()[:8]:
        raise Broken(seq, 'CARD_AUTH_INVALID', 'the challenge names another terminal')
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), record['cardKey'])
        key.verify(e['cardAnswer'], CARD_AUTH_DOMAIN + record['cardId'] + challenge, ec.ECDSA(hashes.SHA256()))
    except (ValueError, InvalidSignature):
        raise Broken(seq, 'CARD_AUTH_INVALID', "the card's answer does not verify with its card key")


def check_meaning(seq, e, cert, root, batches, uses, held, state):
    kind = e['type']
    if 'cardChallenge' in e and kind not in (BATCH_LOADED, USE_RESERVED):
        raise Broken(seq, 'CARD_AUTH_INVALID', 'a card answer on an entry that is no batch load or card use')
    if kind == PROVISIONED and seq != 1:
        raise Broken(seq, 'PROVISIONED_AGAIN', 'a second provisioned entry')
    if kind == BATCH_LOADED:
        try:
            batch = parse_record(e.get('card', b''))
            white = parse_record(batch['issuer']) if batch['kind'] == BATCH else None
        except Malformed as err:
            raise Broken(seq, 'BATCH_INVALID', 'batch card does not parse: %s' % err)
        if white is None or white['kind'] != WHITE or not signed_by(root, white['body'], white['signature']) \
                or not signed_by(white['publicKey'], batch['body'], batch['signature']):
            raise Broken(seq, 'BATCH_INVALID', 'not a batch record of a white card the root signed')
        if batch['clinicCode'] != cert['clinicCode']:
            raise Broken(seq, 'BATCH_WRONG_CLINIC', 'batch of clinic %s on a terminal of %s' % (batch['clinicCode'], cert['clinicCode']))
        if batch['cardId'] in batches:
            raise Broken(seq, 'BATCH_LOADED_TWICE', 'batch %s loaded again' % batch['cardId'].hex())
        check_card_auth(seq, e, batch, cert, state['_settings'])
        batches[batch['cardId']] = batch
    elif kind == USE_RESERVED:
        try:
            card = parse_record(e.get('card', b''))
        except Malformed as err:
            raise Broken(seq, 'CARD_INVALID', 'one-time card does not parse: %s' % err)
        if card['kind'] != ONE_TIME:
            raise Broken(seq, 'CARD_INVALID', 'card of kind %d, not one-time' % card['kind'])
        batch = batches.get(card['batchId'])
        if batch is None:
            raise Broken(seq, 'BATCH_NOT_LOADED', 'batch %s not loaded before' % card['batchId'].hex())
        if not signed_by(batch['publicKey'], card['body'], card['signature']):
            raise Broken(seq, 'CARD_INVALID', 'one-time card not signed by its batch key')
        if not 1 <= card['serial'] <= batch['count']:
            raise Broken(seq, 'SERIAL_OUT_OF_RANGE', 'serial %d outside 1..%d' % (card['serial'], batch['count']))
        key = (card['batchId'], card['serial'])
        if key in held:
            raise Broken(seq, 'SERIAL_USED_TWICE', 'serial %d of batch %s held by an earlier use' % (card['serial'], card['batchId'].hex()))
        check_card_auth(seq, e, card, cert, state['_settings'])
        held.add(key)
        uses[seq] = ['reserved', key]
        state['uses'] += 1
    elif kind == VOUCHER_RESERVED:
        try:
            serial = voucher_use(e.get('card', b''), root)
        except Malformed as err:
            raise Broken(seq, 'VOUCHER_INVALID', str(err))
        key = ('voucher', serial)
        if key in held:
            raise Broken(seq, 'VOUCHER_USED_TWICE', 'voucher %d written off by an earlier use not released' % serial)
        held.add(key)
        uses[seq] = ['reserved', key]
        state['uses'] += 1
    elif kind == SETTLEMENT_RESERVED:
        order = settlement_use(seq, e, root)
        key = ('settlement', order)
        # one order, one use: ('ordered', order) stays in held when the use is released
        if ('ordered', order) in held:
            raise Broken(seq, 'SETTLEMENT_USED_TWICE', 'order %s used by an earlier entry' % order)
        held.add(('ordered', order))
        held.add(key)
        uses[seq] = ['reserved', key]
        state['uses'] += 1
    elif kind in USE_EVENTS:
        use = uses.get(e.get('ref'))
        if use is None:
            raise Broken(seq, 'REF_NOT_A_USE', 'ref %s names no use.reserved entry' % e.get('ref'))
        to, after = USE_EVENTS[kind]
        if use[0] not in after:
            raise Broken(seq, 'USE_STATE', 'use %d cannot go from %s to %s' % (e['ref'], use[0], to))
        use[0] = to
        if to == 'released':
            held.discard(use[1])
            state['releases'] += 1
    elif kind == TERMINAL_SETTING:
        name, _, value = e.get('detail', '').partition('=')
        if 'card' in e or 'chipUid' in e or 'ref' in e or value not in SETTINGS.get(name, ()):
            raise Broken(seq, 'SETTING_INVALID', 'not a known setting and value: %r' % e.get('detail'))
        state['_settings'][name] = value == 'true'
    elif kind == CLOCK_REFUSED:
        if 'detail' not in e or not e['detail']:
            raise Broken(seq, 'CLOCK_REFUSED_INVALID', 'clock.refused without its detail')
    elif kind == WITNESS_ROLLBACK:
        if e.get('ref', 0) < 1 or 'detail' not in e:
            raise Broken(seq, 'WITNESS_INVALID', 'witness.rollback without the seq its witness named, or without its detail')


SETTLEMENT_FORMAT = 'tallystick-settlement-voucher/1'


def settlement_use(seq, e, root):
    """settlement-voucher.md: the card field is the voucher the server signed, for this terminal and the order in detail"""
    vc = checkpoint_module()
    bad = lambda why: Broken(seq, 'SETTLEMENT_INVALID', why)
    try:
        v = json.loads(e.get('card', b'').decode('utf-8'))
    except ValueError:
        raise bad('voucher is not UTF-8 JSON')
    try:
        if not isinstance(v, dict) or v.get('format') != SETTLEMENT_FORMAT:
            raise bad('not a %s voucher' % SETTLEMENT_FORMAT)
        body, signature = vc.signed_pair(v, 'voucher')
        cert_body, cert_signature = vc.signed_pair(v.get('serverCertificate'), 'serverCertificate')
        cert = json.loads(cert_body)
        if not isinstance(cert, dict) or cert.get('format') != vc.SERVER_KEY_FORMAT:
            raise bad('not a %s certificate' % vc.SERVER_KEY_FORMAT)
        if not vc.signed_by(root.hex(), cert_body, cert_signature):
            raise bad('server certificate not signed by the root')
        server_key = vc.hexfield(cert, 'publicKey', 32)
        o = json.loads(body)
        if not isinstance(o, dict) or o.get('format') != SETTLEMENT_FORMAT:
            raise bad('body is not a %s body' % SETTLEMENT_FORMAT)
        order = vc.ident(o, 'orderId')
        vc.hexfield(o, 'orderHash', 32)
        terminal = vc.ident(o, 'terminalId')
        if not isinstance(o.get('item'), str) or not re.fullmatch('[A-Z0-9_]{1,16}', o['item']):
            raise bad('item is not valid')
        amount = vc.whole(o, 'amountFen', 1)
        if vc.whole(o, 'insurerFen', 0) + vc.whole(o, 'patientFen', 0) != amount:
            raise bad('insurerFen + patientFen is not amountFen')
        vc.ident(o, 'settlementId')
        issued, expires = vc.whole(o, 'issuedAt', 0), vc.whole(o, 'expiresAt', 0)
        if expires <= issued:
            raise bad('expiresAt is not after issuedAt')
        if vc.ident(o, 'serverId') != vc.ident(cert, 'serverId'):
            raise bad('voucher names another server than its certificate')
        if not vc.signed_by(server_key, body, signature):
            raise bad('voucher not signed by the certified server key')
    except vc.BadCheckpoint as err:
        raise bad(str(err))
    except ValueError:
        raise bad('body or certificate is not JSON')
    if terminal != e['terminalId']:
        raise bad('voucher for terminal %s' % terminal)
    if e['clockTrusted'] and e['time'] >= expires:
        raise bad('used after the voucher expired')
    if e.get('detail') != order:
        raise bad('entry names order %s, its voucher %s' % (e.get('detail'), order))
    return order


def check_clock_reset(seq, e, cert, root, prev_hash, clock):
    """Section 6.1: the proof in the card field vouches for the reset's time, for this ledger"""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import verify_checkpoint
    bad = lambda why: Broken(seq, 'CLOCK_RESET_INVALID', why)
    if 'card' not in e or not e['clockTrusted']:
        raise bad('clock.reset without its proof, or not clock-trusted')
    try:
        proof = json.loads(e['card'].decode('utf-8'))
    except ValueError:
        raise bad('proof is not UTF-8 JSON')
    if not isinstance(proof, dict):
        raise bad('proof is not an object')
    try:
        if proof.get('by') == 'server':
            fields = verify_checkpoint.verify_checkpoint(proof.get('checkpoint'), root.hex())
            refused = clock['refused']
            if fields['terminalId'] != cert['terminalId']:
                raise bad('checkpoint for terminal %s' % fields['terminalId'])
            if refused is None or not refused <= fields['seq'] <= seq - 1 or clock['hashes'].get(fields['seq']) != fields['headHash']:
                raise bad('checkpoint at seq %d does not cover the last clock.refused entry of this ledger' % fields['seq'])
            time = fields['time']
        elif proof.get('by') == 'mother-card':
            body, signature = verify_checkpoint.signed_pair(proof, 'proof')
            o = json.loads(body)
            if not isinstance(o, dict) or o.get('format') != CLOCK_RESET_FORMAT:
                raise bad('statement is not a %s body' % CLOCK_RESET_FORMAT)
            terminal = verify_checkpoint.ident(o, 'terminalId')
            head_seq = verify_checkpoint.whole(o, 'headSeq', 1)
            head_hash = verify_checkpoint.hexfield(o, 'headHash', 32)
            time = verify_checkpoint.whole(o, 'time', 0)
            verify_checkpoint.hexfield(o, 'motherCardId', 8)
            if not verify_checkpoint.signed_by(root.hex(), body, signature):
                raise bad('statement not signed by this root')
            if terminal != cert['terminalId'] or head_seq != seq - 1 or head_hash != prev_hash.hex():
                raise bad('statement names another terminal or another head')
        else:
            raise bad('proof by %r' % proof.get('by'))
    except (verify_checkpoint.BadCheckpoint, ValueError) as err:
        raise bad('proof refused: %s' % err)
    if time != e['time']:
        raise bad('entry dated %d, its proof says %d' % (e['time'], time))


def unsigned_mismatches(row_seq, row_type, row_time, row_hash, raw):
    """Section 5: the columns beside the entry that are not what the signed entry says"""
    try:
        e = parse_entry(raw)
    except Malformed:
        return []  # the verdict names the entry itself
    wrong = []
    if row_seq != e['seq']:
        wrong.append('seq')
    if row_type != e['type']:
        wrong.append('type')
    if row_time != e['time']:
        wrong.append('time')
    if not isinstance(row_hash, bytes) or row_hash != hashlib.sha256(raw).digest():
        wrong.append('hash')
    return wrong


def read_db(path):
    """Section 5, read-only: the entries in seq order, the unsigned columns that disagree with them, the root key in
    meta (untrusted, or None), and why the file could not be read to its end (None when it could)"""
    entries, columns, root, error = [], [], None, None
    try:
        db = sqlite3.connect('file:%s?mode=ro' % os.path.abspath(path), uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'root_public_key'").fetchone()
            root = bytes(row[0]) if row else None
        except sqlite3.DatabaseError:
            pass
        # one row a query: Python's cursor steps a row ahead, so a scan would lose the last good row before damage
        last = None
        while True:
            row = db.execute('SELECT seq, type, time, hash, entry FROM ledger %s ORDER BY seq LIMIT 1' % ('' if last is None else 'WHERE seq > ?'),
                             () if last is None else (last,)).fetchone()
            if row is None:
                break
            seq, kind, time, digest, entry = row
            last = seq
            entry = bytes(entry) if isinstance(entry, (bytes, memoryview)) else str(entry).encode('utf-8')
            entries.append(entry)
            wrong = unsigned_mismatches(seq, kind, time, bytes(digest) if isinstance(digest, (bytes, memoryview)) else digest, entry)
            if wrong:
                columns.append({'seq': seq, 'columns': wrong})
        # every page of the file, not just the ledger's: a truncated or damaged file is named even when the ledger's pages survived
        problems = [r[0] for r in db.execute('PRAGMA quick_check')]
        if problems != ['ok']:
            error = 'quick_check: %s' % '; '.join(problems[:3])
    except sqlite3.DatabaseError as err:  # includes a damaged, truncated or non-database file
        error = str(err)
    return entries, columns, root, error


def apply_edits(entries, edits):
    out = list(entries)
    for edit in edits:
        op = edit['op']
        if op == 'replace':
            out[edit['index']] = bytes.fromhex(edit['hex'])
        elif op == 'delete':
            del out[edit['index']]
        elif op == 'swap':
            i = edit['index']
            out[i], out[i + 1] = out[i + 1], out[i]
        elif op == 'truncate':
            out = out[:edit['length']]
        elif op == 'append':
            out.append(bytes.fromhex(edit['hex']))
        else:
            raise ValueError('unknown edit %s' % op)
    return out


COMPARED = ('ok', 'entries', 'lastSeq', 'headHash', 'uses', 'releases', 'untrustedClock', 'terminalId')


def same_verdict(got, expected):
    if any(got.get(k) != expected.get(k) for k in COMPARED):
        return False
    gp, ep = got.get('problem'), expected.get('problem')
    return (gp is None) == (ep is None) and (gp is None or (gp['code'], gp['seq']) == (ep['code'], ep['seq']))


def check_vectors(path):
    vectors = json.load(open(path))
    root = bytes.fromhex(vectors['rootPublicKey'])
    if hashlib.sha256(root).hexdigest() != vectors['rootFingerprint']:
        print('FAIL rootFingerprint is not SHA-256 of rootPublicKey')
        return 1
    valid = [bytes.fromhex(e['hex']) for e in vectors['ledger']['entries']]
    failures = 0
    for e, raw in zip(vectors['ledger']['entries'], valid):
        if hashlib.sha256(raw).hexdigest() != e['hash']:
            print('FAIL hash of entry %d' % e['seq'])
            failures += 1
    cases = [('ledger', valid, vectors['ledger']['verdict'])]
    cases += [(t['name'], apply_edits(valid, t['edits']), t['verdict']) for t in vectors['tampered']]
    for name, entries, expected in cases:
        got = verify(entries, root)
        ok = same_verdict(got, expected)
        failures += 0 if ok else 1
        problem = got.get('problem')
        print('%s %s: %s' % ('ok  ' if ok else 'FAIL', name, 'intact' if not problem else '%s at seq %d' % (problem['code'], problem['seq'])))
        if not ok:
            print('     expected %s' % json.dumps(expected))
    print('%d cases, %d failures' % (len(cases), failures))
    return 1 if failures else 0


def describe(verdict):
    if verdict['ok']:
        return 'ledger of %s intact: %d entries, seq 1..%d, %d %s, %d released, %d with an untrusted clock' % (
            verdict['terminalId'], verdict['entries'], verdict['lastSeq'], verdict['uses'], 'use' if verdict['uses'] == 1 else 'uses',
            verdict['releases'], verdict['untrustedClock'])
    p = verdict['problem']
    return 'ledger BROKEN at seq %d: %s: %s\nthe %d entries before it verify' % (p['seq'], p['code'], p['problem'], verdict['entries'])


def options(argv):
    flags = {a for a in argv if a == '--json'}
    rest = [a for a in argv if a not in flags]
    if len(rest) % 2:
        return None, flags
    return dict(zip(rest[0::2], rest[1::2])), flags


BUNDLE_FORMAT = 'tallystick-audit-bundle/3'
STATEMENT_FORMAT = 'tallystick-statement/3'
# format 2 (its statement counts card uses only) is still read, by its own rules: audit-bundle.md section 7
BUNDLE_FORMATS = {BUNDLE_FORMAT: 3, 'tallystick-audit-bundle/2': 2}
STATEMENT_FORMATS = {3: STATEMENT_FORMAT, 2: 'tallystick-statement/2'}
LAST_DAY_MS = 253402300799999  # 9999-12-31T23:59:59.999Z: a later time counts on that day
HEX = '0123456789abcdef'


def checkpoint_module():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import verify_checkpoint
    return verify_checkpoint


def entry_list(entries):
    """audit-bundle.md: [seq, hex entry hash] of each entry, seq 0 when the entry does not parse"""
    out = []
    for raw in entries:
        try:
            seq = parse_entry(raw)['seq']
        except Malformed:
            seq = 0
        out.append([seq, hashlib.sha256(raw).hexdigest()])
    return out


def is_day(value):
    if not isinstance(value, str) or len(value) != 10 or value[4] != '-' or value[7] != '-' or not (value[:4] + value[5:7] + value[8:]).isdigit():
        return False
    try:
        return datetime.date.fromisoformat(value).isoformat() == value
    except ValueError:
        return False


def day_of(ms):
    """audit-bundle.md section 3: the UTC day of the entry's time"""
    return (datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=min(ms, LAST_DAY_MS))).date().isoformat()


def read_period(value):
    if value is None:
        return None
    if not isinstance(value, dict) or not is_day(value.get('from')) or not is_day(value.get('to')) or value['from'] > value['to']:
        raise ValueError('period is not {from, to} UTC days, from <= to')
    return {'from': value['from'], 'to': value['to']}


def parsed_entries(entries):
    out = []
    for raw in entries:
        try:
            out.append(parse_entry(raw))
        except Malformed:
            pass
    return out


def settled_amounts(card):
    """Section 3: a settlement voucher's amounts (its card is UTF-8 JSON whose body names them), or None when they do not read"""
    try:
        voucher = json.loads(card.decode('utf-8'))
        if not isinstance(voucher, dict) or not isinstance(voucher.get('body'), str):
            return None
        body = json.loads(voucher['body'])
        if not isinstance(body, dict):
            return None
        return {k: whole_in(body.get(k), k) for k in ('amountFen', 'insurerFen', 'patientFen')}
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def paid_uses(entries, period):
    """Section 3: (seq, day, paid by, batch id or None, amounts or None) of every use paid in the period, not released"""
    items = parsed_entries(entries)
    released = {e['ref'] for e in items if e['type'] == USE_RELEASED and 'ref' in e}
    out = []
    for e in items:
        if e['type'] not in (USE_RESERVED, VOUCHER_RESERVED, SETTLEMENT_RESERVED) or e['seq'] in released or 'card' not in e:
            continue
        day = day_of(e['time'])
        if period is not None and not period['from'] <= day <= period['to']:
            continue
        if e['type'] == VOUCHER_RESERVED:
            out.append((e['seq'], day, 'voucher', None, None))
        elif e['type'] == SETTLEMENT_RESERVED:
            settled = settled_amounts(e['card'])
            if settled is not None:
                out.append((e['seq'], day, 'settlement', None, settled))
        else:
            try:
                r = parse_record(e['card'])
            except Malformed:
                continue
            if r['kind'] == ONE_TIME:
                out.append((e['seq'], day, 'card', r['batchId'].hex(), None))
    return out


def charged_at_price(paid_by):
    """Card and voucher uses are charged at the clinic's price; an insurance settlement is paid by the platform"""
    return paid_by != 'settlement'


def account_of(entries, period):
    """Section 3's account (format 3): uses paid by kind, per day, card uses per batch, the settlements' amounts"""
    batch_no = {}
    for e in parsed_entries(entries):
        if e['type'] != BATCH_LOADED or 'card' not in e:
            continue
        try:
            r = parse_record(e['card'])
        except Malformed:
            continue
        if r['kind'] == BATCH:
            batch_no.setdefault(r['cardId'].hex(), r['batchNo'])
    days, batches = {}, {}
    kinds = {'card': 0, 'voucher': 0, 'settlement': 0}
    settled = {'amountFen': 0, 'insurerFen': 0, 'patientFen': 0}
    for _, day, paid_by, batch, amounts in paid_uses(entries, period):
        days.setdefault(day, {'card': 0, 'voucher': 0, 'settlement': 0})[paid_by] += 1
        kinds[paid_by] += 1
        if batch is not None:
            batches[batch] = batches.get(batch, 0) + 1
        if amounts is not None:
            for k in settled:
                settled[k] += amounts[k]
    return dict({'uses': kinds['card'] + kinds['voucher']}, **kinds, settled=settled,
                days=[dict({'day': d, 'uses': days[d]['card'] + days[d]['voucher']}, **days[d]) for d in sorted(days)],
                batches=[{'batchId': b, 'batchNo': batch_no.get(b, 0), 'uses': batches[b]} for b in sorted(batches)])


def account_for(version, a):
    """The account as a statement of that format signs it: format 2 counted card uses only"""
    if version == 3:
        return a
    return {'uses': a['card'], 'days': [{'day': d['day'], 'uses': d['card']} for d in a['days'] if d['card'] > 0], 'batches': a['batches']}


def split_income(uses, pricing):
    """Section 2: the investor's part rounded half up in integers, the clinic the rest, the agent's out of the investor's"""
    part = lambda gross, bp: (gross * bp + 5000) // 10000
    gross = uses * pricing['pricePerUse']
    investor = part(gross, pricing['investorShareBp'])
    if 'agentCode' not in pricing:
        return {'gross': gross, 'clinic': gross - investor, 'investor': investor}
    agent = min(investor, part(gross, pricing['agentShareBp']))
    return {'gross': gross, 'clinic': gross - investor, 'investor': investor - agent, 'agentCode': pricing['agentCode'], 'agent': agent}


def whole_in(value, what, high=MAX_SAFE):
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON has one number type: 3.0 is the whole number 3, as a JavaScript reader takes it
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= high:
        raise ValueError('%s is not a whole number 0..%d' % (what, high))
    return value


def read_statement_fields(fields, vc, version):
    """Section 2's BODY fields beyond the entries (the account of the statement's format); ValueError/BadCheckpoint when a field has not its form"""
    code = fields.get('clinicCode')
    if not isinstance(code, str) or not 1 <= len(code) <= 16:
        raise ValueError('clinicCode is not 1..16 characters')
    pricing = fields.get('pricing')
    if not isinstance(pricing, dict):
        raise ValueError('pricing is not an object')
    p = {'pricePerUse': whole_in(pricing.get('pricePerUse'), 'pricePerUse'), 'investorShareBp': whole_in(pricing.get('investorShareBp'), 'investorShareBp', 10000)}
    if 'agentCode' in pricing:
        p.update(agentCode=vc.ident(pricing, 'agentCode'), agentShareBp=whole_in(pricing.get('agentShareBp'), 'agentShareBp', 10000))
    account = fields.get('account')
    if not isinstance(account, dict) or not isinstance(account.get('days'), list) or not isinstance(account.get('batches'), list):
        raise ValueError('account is not {uses, days, batches}')
    days = []
    per_day = ('uses',) if version == 2 else ('uses', 'card', 'voucher', 'settlement')
    for d in account['days']:
        if not isinstance(d, dict) or not is_day(d.get('day')):
            raise ValueError('account day is not a UTC day')
        days.append(dict({'day': d['day']}, **{k: whole_in(d.get(k), k) for k in per_day}))
    batches = []
    for b in account['batches']:
        if not isinstance(b, dict) or not isinstance(b.get('batchId'), str) or len(b['batchId']) != 16 or not all(c in HEX for c in b['batchId']):
            raise ValueError('account batchId is not 8 bytes of hex')
        batches.append({'batchId': b['batchId'], 'batchNo': whole_in(b.get('batchNo'), 'batchNo'), 'uses': whole_in(b.get('uses'), 'uses')})
    a = {'uses': whole_in(account.get('uses'), 'uses')}
    if version == 3:
        a.update({k: whole_in(account.get(k), k) for k in ('card', 'voucher', 'settlement')})
        settled = account.get('settled')
        if not isinstance(settled, dict):
            raise ValueError('account settled is not an object')
        a['settled'] = {k: whole_in(settled.get(k), k) for k in ('amountFen', 'insurerFen', 'patientFen')}
    a.update(days=days, batches=batches)
    income = fields.get('income')
    if not isinstance(income, dict):
        raise ValueError('income is not an object')
    i = {k: whole_in(income.get(k), k) for k in ('gross', 'clinic', 'investor')}
    if 'agentCode' in income:
        i.update(agentCode=vc.ident(income, 'agentCode'), agent=whole_in(income.get('agent'), 'agent'))
    return code, read_period(fields.get('period')), p, a, i


def ledger_clinic(entries):
    """The clinic code of entry 1's terminal certificate, when it parses"""
    try:
        first = parse_entry(entries[0])
        if first['seq'] != 1 or 'card' not in first:
            return None
        cert = parse_record(first['card'])
        return cert['clinicCode'] if cert['kind'] == TERMINAL else None
    except (Malformed, IndexError):
        return None


def check_statement(bundle, entries, root):
    vc = checkpoint_module()
    st = bundle['statement']
    version = BUNDLE_FORMATS[bundle['format']]
    statement_format = STATEMENT_FORMATS[version]
    bad = lambda why: {'ok': False, 'problem': {'code': 'STATEMENT_INVALID', 'problem': why}}
    try:
        body, signature = vc.signed_pair(st, 'statement')
        cert_body, cert_signature = vc.signed_pair(st.get('serverCertificate'), 'serverCertificate')
        cert = json.loads(cert_body)
        if not isinstance(cert, dict) or cert.get('format') != vc.SERVER_KEY_FORMAT:
            return bad('not a server key certificate')
        server_id, public_key = vc.ident(cert, 'serverId'), vc.hexfield(cert, 'publicKey', 32)
        vc.hexfield(cert, 'motherCardId', 8)
        vc.whole(cert, 'issuedAt', 0)
        if not vc.signed_by(root.hex(), cert_body, cert_signature):
            return bad('server key of %s is not certified by this root' % server_id)
        fields = json.loads(body)
        # the body's format is the bundle's: a format 3 bundle cannot carry a body held to format 2's rules
        if not isinstance(fields, dict) or fields.get('format') != statement_format:
            return bad('statement body is not a %s body' % statement_format)
        body_version = version
        listed, last = fields.get('entries'), 0
        if not isinstance(listed, list):
            return bad('statement entries is not a list')
        for pair in listed:
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], int) and not isinstance(pair[0], bool) and pair[0] > last
                    and isinstance(pair[1], str) and len(pair[1]) == 64 and all(c in HEX for c in pair[1])):
                return bad('statement entries are not [seq, hash] with seq rising')
            last = pair[0]
        terminal_id, stated_server = vc.ident(fields, 'terminalId'), vc.ident(fields, 'serverId')
        vc.whole(fields, 'time', 0)
        clinic, period, pricing, account, income = read_statement_fields(fields, vc, body_version)
    except (vc.BadCheckpoint, ValueError) as err:
        return bad(str(err))
    if stated_server != server_id:
        return bad('statement names server %s, its certificate %s' % (stated_server, server_id))
    if not vc.signed_by(public_key, body, signature):
        return bad('statement not signed by the key of server %s' % server_id)
    out = {'ok': True, 'serverId': server_id, 'time': fields['time'], 'entries': len(listed), 'clinicCode': clinic, 'period': period, 'pricing': pricing, 'income': income}
    mismatch = lambda why: dict(out, ok=False, problem={'code': 'STATEMENT_MISMATCH', 'problem': why})
    if terminal_id != bundle['terminalId']:
        return mismatch('statement is about terminal %s' % terminal_id)
    if period != bundle['period']:
        return mismatch("the statement's period is not the bundle's")
    cert_clinic = ledger_clinic(entries)
    if cert_clinic is not None and cert_clinic != clinic:
        return mismatch('statement names clinic %s, the terminal certificate %s' % (clinic, cert_clinic))
    if split_income(account['uses'], pricing) != income:
        return mismatch("the statement's income is not its uses at its price and shares")
    if bundle['side'] == 'server':
        if entry_list(entries) != listed:
            return mismatch('the statement does not list exactly the entries of this bundle')
        # a format 2 statement is held to what format 2 counted (card uses); a format 3 one to every kind
        if account_for(body_version, account_of(entries, bundle['period'])) != account:
            return mismatch("the statement's uses by kind, per day and batch are not those of its entries" if body_version == 3
                            else "the statement's uses per day and batch are not those of its entries")
    return out


class BadBundle(Exception):
    pass


def read_bundle(bundle):
    """The bundle's shape (audit-bundle.md section 1), or BadBundle"""
    if not isinstance(bundle, dict) or bundle.get('format') not in BUNDLE_FORMATS:
        old = ' (format 1 has no period or account: export it again)' if isinstance(bundle, dict) and bundle.get('format') == 'tallystick-audit-bundle/1' else ''
        raise BadBundle('not a %s bundle (nor format 2)%s' % (BUNDLE_FORMAT, old))
    st = bundle.get('statement')
    statement_format = STATEMENT_FORMATS[BUNDLE_FORMATS[bundle['format']]]
    if st is not None and (not isinstance(st, dict) or st.get('format') not in STATEMENT_FORMATS.values()):
        raise BadBundle('statement is not a tallystick statement')
    if st is not None and st['format'] != statement_format:
        raise BadBundle('a %s bundle carries a %s statement' % (bundle['format'], st['format']))
    if bundle.get('side') not in ('terminal', 'server'):
        raise BadBundle('side is not terminal or server')
    entries = bundle.get('entries')
    if not isinstance(entries, list) or not all(isinstance(e, str) and e and len(e) % 2 == 0 and all(c in HEX for c in e) for e in entries):
        raise BadBundle('entries is not a list of lower-case hex')
    for key in ('terminalId', 'rootPublicKey'):
        if not isinstance(bundle.get(key), str):
            raise BadBundle('%s missing' % key)
    try:
        bundle['period'] = read_period(bundle.get('period'))
    except ValueError as err:
        raise BadBundle(str(err))
    return [bytes.fromhex(e) for e in entries]


def verify_bundle(bundle, root):
    entries = read_bundle(bundle)
    ledger = verify(entries, root)
    out = {'format': BUNDLE_FORMATS[bundle['format']], 'side': bundle['side'], 'terminalId': bundle['terminalId'], 'ledger': ledger, 'period': bundle['period'], 'account': account_of(entries, bundle['period'])}
    if ledger_clinic(entries) is not None:
        out['clinicCode'] = ledger_clinic(entries)
    if bundle.get('checkpoint') is not None:
        vc = checkpoint_module()
        try:
            fields = vc.verify_checkpoint(bundle['checkpoint'], root.hex())
            hashes = [hashlib.sha256(raw).hexdigest() for raw in entries]
            out['checkpoint'] = vc.check_ledger(hashes, ledger['lastSeq'], ledger.get('terminalId'), fields)
        except (vc.BadCheckpoint, ValueError) as err:
            out['checkpoint'] = {'ok': False, 'problem': {'code': 'BAD_CHECKPOINT', 'problem': str(err)}}
    if bundle.get('statement') is not None:
        out['statement'] = check_statement(bundle, entries, root)
    if ledger.get('terminalId') is not None and ledger['terminalId'] != bundle['terminalId']:
        out['problem'] = {'code': 'TERMINAL_MISMATCH', 'problem': 'the bundle names another terminal than its ledger'}
    elif bundle['side'] == 'server' and 'statement' not in out:
        out['problem'] = {'code': 'STATEMENT_INVALID', 'problem': "a server's bundle without its signed statement"}
    out['ok'] = ledger['ok'] and out.get('checkpoint', {'ok': True})['ok'] and out.get('statement', {'ok': True})['ok'] and 'problem' not in out
    return out


def bundle_summary(v):
    """The fields of a bundle verdict that the golden vectors record"""
    led = v['ledger']
    out = {'ok': v['ok'], 'format': v['format'], 'ledger': {k: led[k] for k in ('ok', 'entries', 'lastSeq', 'headHash')}}
    if 'problem' in led:
        out['ledger']['problem'] = {'code': led['problem']['code'], 'seq': led['problem']['seq']}
    if 'checkpoint' in v:
        out['checkpoint'] = {'ok': v['checkpoint']['ok']}
        if 'problem' in v['checkpoint']:
            out['checkpoint']['problem'] = {'code': v['checkpoint']['problem']['code']}
    out['account'] = v['account']
    if 'statement' in v:
        st = v['statement']
        out['statement'] = {'ok': st['ok']}
        if 'problem' in st:
            out['statement']['problem'] = {'code': st['problem']['code']}
        if st['ok']:
            out['statement']['income'] = st['income']
    if 'problem' in v:
        out['problem'] = {'code': v['problem']['code']}
    return out


def statement_pricing(bundle):
    """The pricing of the server's statement body, when it has its form (signature aside: the verdict says)"""
    try:
        fields = json.loads(bundle['statement']['body'])
        return read_statement_fields(fields, checkpoint_module(), 3 if fields.get('format') == STATEMENT_FORMAT else 2)[2]
    except Exception:  # noqa: BLE001 - any statement that does not parse gives no price
        return None


def compare_bundles(terminal, server):
    """Section 4: seq by seq, and the uses and money of the period at the server statement's pricing"""
    t, s = read_bundle(terminal), read_bundle(server)
    period = server['period'] if server['period'] is not None else terminal['period']
    pricing = statement_pricing(server) if server.get('statement') is not None else None
    tm = {seq: (h, raw) for (seq, h), raw in zip(entry_list(t), t)}
    sm = {seq: (h, raw) for (seq, h), raw in zip(entry_list(s), s)}
    t_paid = {u[0]: u[2] for u in paid_uses(t, period)}
    s_paid = {u[0]: u[2] for u in paid_uses(s, period)}
    differences = []
    for seq in sorted(set(tm) | set(sm)):
        a, b = tm.get(seq), sm.get(seq)
        if a and b and a[0] == b[0]:
            continue
        d = {'seq': seq, 'kind': 'differs' if a and b else 'terminal-only' if a else 'server-only'}
        paid_by = t_paid.get(seq) if a else s_paid.get(seq)
        if paid_by is not None:
            d['paidBy'] = paid_by
            if charged_at_price(paid_by):
                d['charged'] = True
        differences.append(d)
    ta, sa = account_of(t, period), account_of(s, period)
    out = {'match': not differences and terminal['terminalId'] == server['terminalId'],
           'terminalCharged': ta['uses'], 'serverCharged': sa['uses'],
           'terminalKinds': {k: ta[k] for k in ('card', 'voucher', 'settlement')}, 'serverKinds': {k: sa[k] for k in ('card', 'voucher', 'settlement')}}
    if pricing is not None:
        ti, si = split_income(out['terminalCharged'], pricing), split_income(out['serverCharged'], pricing)
        out.update(terminalIncome=ti, serverIncome=si)
        money = {'uses': out['serverCharged'] - out['terminalCharged']}
        money.update({k: si[k] - ti[k] for k in ('gross', 'clinic', 'investor')})
        if 'agent' in si:
            money['agent'] = si['agent'] - ti.get('agent', 0)
        out['money'] = money
    out['differences'] = differences
    return out


def check_bundle_vectors(path):
    vectors = json.load(open(path))
    root = bytes.fromhex(vectors['rootPublicKey'])
    failures = 0
    for case in vectors['bundles']:
        got = bundle_summary(verify_bundle(json.loads(json.dumps(case['bundle'])), root))
        ok = got == case['verdict']
        failures += 0 if ok else 1
        print('%s %s' % ('ok  ' if ok else 'FAIL', case['name']))
        if not ok:
            print('     got      %s\n     expected %s' % (json.dumps(got), json.dumps(case['verdict'])))
    by_name = {case['name']: case['bundle'] for case in vectors['bundles']}
    for c in vectors['comparisons']:
        got = dict({'terminal': c['terminal'], 'server': c['server']}, **compare_bundles(json.loads(json.dumps(by_name[c['terminal']])), json.loads(json.dumps(by_name[c['server']]))))
        ok = got == c
        failures += 0 if ok else 1
        print('%s compare %s %s' % ('ok  ' if ok else 'FAIL', c['terminal'], c['server']))
        if not ok:
            print('     got      %s\n     expected %s' % (json.dumps(got), json.dumps(c)))
    print('%d bundles, %d comparisons, %d failures' % (len(vectors['bundles']), len(vectors['comparisons']), failures))
    return 1 if failures else 0


def bundle_root(args, bundle):
    """The root the auditor trusts: --root, or the bundle's own key when it has --root-fingerprint; None: refused (printed)"""
    if '--root' in args:
        return bytes.fromhex(args['--root'])
    if '--root-fingerprint' in args:
        key = bundle.get('rootPublicKey', '') if isinstance(bundle, dict) else ''
        root = bytes.fromhex(key) if isinstance(key, str) and len(key) == 64 and all(c in HEX for c in key) else b''
        if hashlib.sha256(root).hexdigest() != args['--root-fingerprint'].lower():
            print('AUDIT_BUNDLE_INVALID: the root key in the bundle does not have fingerprint %s' % args['--root-fingerprint'])
            return None
        return root
    raise Usage('give the root you trust: --root HEX or --root-fingerprint HEX')


def load_bundle(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError) as err:
        raise BadBundle(str(err))


def money(amount):
    return '%s%d.%02d' % ('-' if amount < 0 else '', abs(amount) // 100, abs(amount) % 100)


def bundle_main(args, flags):
    try:
        bundle = load_bundle(args['--bundle'])
        root = bundle_root(args, bundle)
        if root is None:
            return 4
        verdict = verify_bundle(bundle, root)
    except BadBundle as err:
        print('BAD_AUDIT_BUNDLE: %s' % err)
        return 3
    if flags:
        print(json.dumps(verdict, indent=2))
        return 0 if verdict['ok'] else 4
    a, st = verdict['account'], verdict.get('statement')
    print('%s: %s bundle of %s' % ('VERIFIED' if verdict['ok'] else 'NOT VERIFIED', verdict['side'], verdict['terminalId']))
    period = '%s..%s' % (verdict['period']['from'], verdict['period']['to']) if verdict['period'] else 'every entry'
    line = '  %s%s: %d uses charged%s' % ('clinic %s, ' % verdict['clinicCode'] if 'clinicCode' in verdict else '', period, a['uses'],
                                        ' (%d card, %d voucher)' % (a['card'], a['voucher']) if a['voucher'] else '')
    if st and st['ok']:
        i = st['income']
        line += ' at %s: %s (the clinic\'s share %s, the investor\'s %s%s)' % (money(st['pricing']['pricePerUse']), money(i['gross']), money(i['clinic']), money(i['investor']),
                                                                           ', agent %s\'s %s' % (i['agentCode'], money(i['agent'])) if 'agentCode' in i else '')
    print(line)
    if a['settlement']:
        t = a['settled']
        print("  insurance: %d use%s settled with the platform, %s (the insurer %s, the patient %s), not charged at the clinic's price" % (
            a['settlement'], '' if a['settlement'] == 1 else 's', money(t['amountFen']), money(t['insurerFen']), money(t['patientFen'])))
    if verdict['format'] == 2:
        print('  format 2 bundle: its statement counts card uses only (vouchers and insurance are not in its income); the uses above are counted by format 3')
    print('  ' + describe(verdict['ledger']).replace('\n', '\n  '))
    for part in ('checkpoint', 'statement'):
        if part in verdict:
            p = verdict[part]
            print('  %s: %s' % (part, 'ok' if p['ok'] else '%s: %s' % (p['problem']['code'], p['problem'].get('problem', ''))))
    if 'problem' in verdict:
        print('  %s: %s' % (verdict['problem']['code'], verdict['problem']['problem']))
    day = lambda d: '%s %d' % (d['day'], d['uses']) if not d['voucher'] and not d['settlement'] else '%s %d (card %d, voucher %d%s)' % (
        d['day'], d['uses'], d['card'], d['voucher'], '; insurance %d' % d['settlement'] if d['settlement'] else '')
    print('  uses per day: %s' % (', '.join(day(d) for d in a['days']) or 'none'))
    print('  card uses per batch: %s' % (', '.join('batch %d (%s) %d' % (b['batchNo'], b['batchId'], b['uses']) for b in a['batches']) or 'none'))
    return 0 if verdict['ok'] else 4


def compare_main(args, flags):
    """--compare TERMINAL_BUNDLE --with SERVER_BUNDLE: both verified, then compared; exit 0 when they match and verify"""
    try:
        terminal, server = load_bundle(args['--compare']), load_bundle(args['--with'])
        root = bundle_root(args, terminal)
        if root is None:
            return 4
        verdicts = {'terminal': verify_bundle(terminal, root), 'server': verify_bundle(server, root)}
        if verdicts['terminal']['side'] != 'terminal' or verdicts['server']['side'] != 'server':
            raise Usage("give the terminal's bundle to --compare, the server's to --with")
        c = compare_bundles(terminal, server)
    except BadBundle as err:
        print('BAD_AUDIT_BUNDLE: %s' % err)
        return 3
    ok = c['match'] and verdicts['terminal']['ok'] and verdicts['server']['ok']
    if flags:
        print(json.dumps(dict(c, ok=ok, verdicts=verdicts), indent=2))
    else:
        kinds = [d['kind'] for d in c['differences']]
        print('MATCH' if c['match'] else 'DIFFER: %d entries only on the terminal, %d only on the server, %d different at the same seq' % (
            kinds.count('terminal-only'), kinds.count('server-only'), kinds.count('differs')))
        kinds = lambda k: ' (%d card, %d voucher)' % (k['card'], k['voucher']) if k['voucher'] else ''
        print('uses charged: terminal %d%s, server %d%s' % (c['terminalCharged'], kinds(c['terminalKinds']), c['serverCharged'], kinds(c['serverKinds'])))
        if c['terminalKinds']['settlement'] != c['serverKinds']['settlement']:
            print('insurance uses: terminal %d, server %d' % (c['terminalKinds']['settlement'], c['serverKinds']['settlement']))
        if 'money' in c:
            m = c['money']
            print('the server charges %s more (negative: less): the clinic\'s share %s, the investor\'s %s' % (money(m['gross']), money(m['clinic']), money(m['investor'])))
        for d in c['differences']:
            print('  seq %d: %s%s' % (d['seq'], d['kind'], ', a charged %s use' % d['paidBy'] if d.get('charged') else ', an insurance use' if d.get('paidBy') else ''))
        for side in ('terminal', 'server'):
            print('%s bundle: %s' % (side, 'verified' if verdicts[side]['ok'] else 'NOT verified'))
    return 0 if ok else 4


def many_bundles(path):
    """FILE is {"root": HEX, "bundles": [BUNDLE, ...]}: a JSON list, the bundle_summary of each (or its BAD_AUDIT_BUNDLE)"""
    job = json.load(open(path))
    root = bytes.fromhex(job['root'])
    out = []
    for bundle in job['bundles']:
        try:
            out.append(bundle_summary(verify_bundle(bundle, root)))
        except BadBundle:
            out.append({'ok': False, 'problem': {'code': 'BAD_AUDIT_BUNDLE'}})
    print(json.dumps(out))
    return 0


class Usage(Exception):
    pass


def run(args):
    """(exit code, verdict) of one ledger (--db or --entries) against a root, with --checkpoint if given"""
    error, columns = None, None
    if '--db' in args:
        if not os.path.isfile(args['--db']):
            raise Usage('no ledger at %s' % args['--db'])
        entries, columns, db_root, error = read_db(args['--db'])
    elif '--entries' in args:
        entries, db_root = [bytes.fromhex(line.strip()) for line in open(args['--entries']) if line.strip()], None
    else:
        raise Usage(__doc__)
    if '--root' in args:
        root = bytes.fromhex(args['--root'])
    elif '--root-fingerprint' in args and db_root is None and error is not None:
        root = bytes(32)  # the meta table is unreadable too: no entry can be checked, the verdict is DATABASE_UNREADABLE at 1
        entries = []
    elif '--root-fingerprint' in args and db_root is not None:
        if hashlib.sha256(db_root).hexdigest() != args['--root-fingerprint'].lower():
            raise Usage('the root key in the database does not have fingerprint %s: give --root' % args['--root-fingerprint'])
        root = db_root
    else:
        raise Usage('give the root you trust: --root HEX (or --root-fingerprint HEX with --db)')
    if len(root) != 32:
        raise Usage('--root must be 32 bytes of hex')
    verdict = verify(entries, root, error)
    if columns is not None:
        verdict['unsignedColumns'] = columns
    code = 0 if verdict['ok'] else 4
    if '--checkpoint' in args:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import verify_checkpoint
        try:
            fields = verify_checkpoint.verify_checkpoint(json.load(open(args['--checkpoint'])), root.hex())
        except (verify_checkpoint.BadCheckpoint, ValueError) as err:
            return 3, {'ok': False, 'code': 'BAD_CHECKPOINT', 'problem': str(err)}
        hashes = [hashlib.sha256(raw).hexdigest() for raw in entries]
        cp = verify_checkpoint.check_ledger(hashes, verdict['lastSeq'], verdict.get('terminalId'), fields)
        verdict = dict(verdict, ok=verdict['ok'] and cp['ok'], checkpoint=cp)
        code = 0 if verdict['ok'] else 4
    return code, verdict


def main(argv):
    if len(argv) == 2 and argv[1] in ('--help', '-h'):
        sys.stdout.write(__doc__)
        return 0
    args, flags = options(argv[1:])
    if args is None or not args:
        sys.stderr.write(__doc__)
        return 2
    if '--vectors' in args:
        return check_vectors(args['--vectors'])
    if '--many' in args:
        job = json.load(open(args['--many']))
        root = bytes.fromhex(job['root'])
        print(json.dumps([verify([bytes.fromhex(h) for h in ledger], root) for ledger in job['ledgers']]))
        return 0
    if '--bundle-vectors' in args:
        return check_bundle_vectors(args['--bundle-vectors'])
    if '--bundle' in args or '--compare' in args:
        try:
            return bundle_main(args, flags) if '--bundle' in args else compare_main(args, flags)
        except Usage as err:
            sys.stderr.write('%s\n' % str(err).strip())
            return 2
    if '--many-bundles' in args:
        return many_bundles(args['--many-bundles'])
    if '--many-db' in args:
        job = json.load(open(args['--many-db']))
        common = {'--root': job['root'], **({'--checkpoint': job['checkpoint']} if job.get('checkpoint') else {})}
        print(json.dumps([run(dict(common, **{'--db': path}))[1] for path in job['dbs']]))
        return 0
    try:
        code, verdict = run(args)
    except Usage as err:
        sys.stderr.write('%s\n' % str(err).strip())
        return 2
    if code == 3:
        print(json.dumps(verdict) if flags else 'BAD_CHECKPOINT: %s' % verdict['problem'])
        return 3
    if flags:
        print(json.dumps(verdict, indent=2))
    else:
        print(describe(verdict))
        for c in verdict.get('unsignedColumns', []):
            print('warning: the unsigned %s column%s of row %d differ%s from its signed entry' % (
                ' and '.join(c['columns']), 's' if len(c['columns']) > 1 else '', c['seq'], '' if len(c['columns']) > 1 else 's'))
        if 'checkpoint' in verdict:
            cp = verdict['checkpoint']
            print('holds the checkpoint of server %s: seq %d' % (cp['serverId'], cp['seq']) if cp['ok']
                  else '%s at seq %d (last good seq %d)' % (cp['problem']['code'], cp['problem']['seq'], cp['lastGoodSeq']))
    return code


if __name__ == '__main__':
    sys.exit(main(sys.argv))
