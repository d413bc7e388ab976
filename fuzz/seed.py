#!/usr/bin/env python3
"""Writes the seed inputs for each fuzz target into fuzz/seeds/<target>/:
the frames, bodies, config files and forms that the test suite sends
(tests/realtime.rs, tests/bad_input.rs, tests/uploads.rs, the config unit
tests). `cargo fuzz run TARGET fuzz/corpus/TARGET fuzz/seeds/TARGET`
starts from them; the minimised corpus in fuzz/corpus/ is committed."""
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, data):
    folder = os.path.join(HERE, "seeds", target)
    os.makedirs(folder, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def client_frame(payload, opcode=0x1, mask=b"\0\0\0\0", fin=True):
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes([first, 0x80 | n])
    elif n < 65536:
        head = bytes([first, 0x80 | 126]) + struct.pack(">H", n)
    else:
        head = bytes([first, 0x80 | 127]) + struct.pack(">Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


CLIENT_MSGS = [
    b'{"type":"join","room":"lobby"}',
    b'{"type":"join","room":"no-such-room"}',
    '{"type":"chat","text":"h\u00e9llo <b>&</b> \U0001f44b","nonce":"n-1"}'.encode(),
    b'{"type":"chat","text":"hi","nonce":"abc-123"}',
    b'{"type":"chat","text":"marker"}',
    b'{"type":"leave"}',
    b'{"type":"signal","to":"s1","data":{"description":{"type":"offer","sdp":"v=0\\r\\n"}}}',
    b'{"type":"signal","to":"s2","data":{"candidate":{}}}',
    b'{"type":"voice","action":"join"}',
    b'{"type":"voice","action":"leave"}',
    b'{"type":"mute","muted":true}',
    b'{"type":"sfu","data":{}}',
    b'{"type":"admin_watch"}',
    b'{"type":"ping"}',
    b'{"type":"ping","extra":1}',
    b'{"type":"chat","text":42}',
    b'not json',
]


def ws_frames():
    for msg in CLIENT_MSGS:
        write("ws_frames", client_frame(msg))
        write("ws_frames", client_frame(msg, mask=b"\x12\x34\x56\x78"))
    write("ws_frames", b"".join(client_frame(m) for m in CLIENT_MSGS[:4]))
    write("ws_frames", client_frame(b"", opcode=0x9) + client_frame(b"", opcode=0xA))
    write("ws_frames", client_frame(struct.pack(">H", 1000) + b"bye", opcode=0x8))
    write("ws_frames", client_frame(b'{"type":', fin=False) + client_frame(b'"ping"}', opcode=0x0))
    write("ws_frames", client_frame(b"\x00\x01", opcode=0x2))
    write("ws_frames", client_frame(b"\xff\xfe", opcode=0x1))
    write("ws_frames", bytes([0x81, 0xFF]) + struct.pack(">Q", 1 << 30) + b"\0\0\0\0")
    write("ws_frames", bytes([0x81, 0x05]) + b"hello")  # unmasked


def config():
    write("config", b'max_users = 7\nallow_guests = true\nstun_urls = ["stun:a", "stun:b"]\n')
    write("config", b"bogus = 1\n")
    write("config", b'GOOGLE_CLIENT_ID = "x"\nGOOGLE_CLIENT_SECRET = "y"\n')
    write("config", b'oidc_issuer = "https://id.example.org"\noidc_client_id = "c"\noidc_client_secret = "s"\n')
    write("config", b'bind = "0.0.0.0:8080"\npublic_url = "https://chat.example.org"\ntrusted_proxies = ["127.0.0.1", "10.0.0.0/8"]\n')
    write("config", b'turn_urls = "turn:t.example.org"\nturn_secret = "s"\nturn_ttl_seconds = 3600\n')
    write("config", b'turn_urls = ["turn:a"]\nturn_username = "u"\nturn_credential = "c"\n')
    write("config", b'bcrypt_cost = 4\nws_outbox_kb = 16\nmax_upload_mb = 50\nlog_format = "json"\n')
    write("config", b"session_idle_minutes = 30\nsession_max_hours = 12\nchat_rate_per_sec = 5\nchat_burst = 20\n")
    # Sizes and durations whose product with their unit overflowed (fixed).
    write("config", b"max_upload_mb = 9223372036854775807\n")
    write("config", b'session_idle_minutes = "18446744073709551615"\nsession_max_hours = 9223372036854775807\n')
    write("config", b'data_dir = "/var/lib/switchboard"\ndatabase_path = "db.sqlite"\nweb_dir = "web"\n')


BODIES = [
    (0, b'{"username":"alice","email":"a@example.org","password":"correct horse battery"}'),
    (0, b'{"username":"bob","email":"b@example.org","password":"pw","captcha_id":"c","captcha_answer":"7"}'),
    (1, b'{"login":"alice","password":"pw"}'),
    (1, b'{"login":"alice","password":"pw","captcha_id":"c","captcha_answer":"1","totp":"123456"}'),
    (2, b'{"name":"guest"}'),
    (3, b'{"username":"Zo\xc3\xab"}'),
    (4, b'{"current_password":"a","new_password":"b"}'),
    (5, b'{"code":"123456"}'),
    (6, b'{"name":"General"}'),
    (7, b'{"is_admin":true,"roles":["moderator"]}'),
    (8, b'{"reason":"spam"}'),
    (9, b'{"room":"lobby"}'),
    (10, b'{"user_id":2,"ip":"10.0.0.1","reason":"abuse","expires_at":"2030-01-01T00:00:00Z"}'),
    (11, b'{"name":"moderator"}'),
    (12, b'{"permission":"kick"}'),
    (13, b"q=ali&page=2"),
    (14, b"user=alice&ip=127.0.0.1&room=lobby&action=login&from=2026-01-01&to=2026-12-31&q=x"),
    (15, b"before=100&limit=50"),
    (16, b"code=abc&state=xyz"),
    (16, b"error=access_denied"),
    (17, b'{"code":"123456"}'),
    (18, b'{"token":"abc"}'),
    (19, b'{"token":"abc","password":"new password"}'),
    (20, b'{"token":"abc"}'),
    (21, b'{"email":"new@example.org","password":"pw"}'),
    (22, b'{"display_name":"Ann","username":"ann"}'),
    (23, b'{"username":"carol","email":"c@example.org"}'),
    (24, b'{"reason":"lost phone"}'),
    (25, b'{"email":"d@example.org"}'),
    (26, b"next=%2Frooms"),
]
BAD_BODIES = [
    b"{", b'{"username": ', b"not json at all", b"{'single': 'quotes'}", b'{"name": "x",}',
    b'{"name": "x"} trailing', b"[]", b"null", b'"just a string"', b"42", b"",
    b'{"name": "\xff\xfe"}', b'\xef\xbb\xbf{"name": "bom"}',
]


def json_bodies():
    for pick, body in BODIES:
        write("json_bodies", bytes([pick]) + body)
    for i, body in enumerate(BAD_BODIES):
        write("json_bodies", bytes([i % 27]) + body)


def form(parts, boundary=b"X"):
    body = b""
    for name, filename, ctype, data in parts:
        body += b"--" + boundary + b"\r\n"
        disp = b'Content-Disposition: form-data; name="' + name + b'"'
        if filename is not None:
            disp += b'; filename="' + filename + b'"'
        body += disp + b"\r\n"
        if ctype:
            body += b"Content-Type: " + ctype + b"\r\n"
        body += b"\r\n" + data + b"\r\n"
    body += b"--" + boundary + b"--\r\n"
    return b"multipart/form-data; boundary=" + boundary + b"\n" + body


PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
WEBM = bytes.fromhex("1a45dfa39f4286810142f7810142f2810442f381084282847765626d")


def multipart():
    write("multipart", form([(b"file", b"notes.txt", b"text/plain", b"hello\nworld\n")]))
    write("multipart", form([(b"file", b"../../etc/passwd", b"text/plain", b"root")]))
    write("multipart", form([(b"file", b"C:\\x\\a.png", b"image/png", PNG)]))
    write("multipart", form([(b"file", b"doc.pdf", b"application/pdf", PDF)]))
    write("multipart", form([(b"file", b"voice.webm", b"audio/webm", WEBM)]))
    write("multipart", form([(b"file", b"bin.exe", b"application/octet-stream", b"MZ\x90\x00\x03")]))
    write("multipart", form([(b"file", b"empty.txt", b"text/plain", b"")]))
    write("multipart", form([(b"other", b"a.txt", None, b"hi")]))
    write("multipart", form([(b"file", None, None, b"no name")]))
    write("multipart", b"text/plain\nhello")
    write("multipart", b"multipart/form-data\n--X\r\n")


ws_frames()
config()
json_bodies()
multipart()
