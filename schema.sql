-- Switchboard schema: the whole, current schema of a fresh database.
-- The binary embeds this file and applies it to an empty database, then sets
-- PRAGMA user_version to the latest version (src/db/mod.rs). Older databases
-- are brought up to date by the numbered migrations in src/db/mod.rs
-- (MIGRATIONS).
--
-- Times are INTEGER milliseconds since the Unix epoch (UTC): compact, and
-- range filters compare numbers. The API renders them as RFC 3339.

CREATE TABLE users (
    id              INTEGER PRIMARY KEY,
    -- Shown as typed; unique without regard to case.
    username        TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    display_name    TEXT    NOT NULL,
    -- Normalised (trimmed, lower case); NULL for guests.
    email           TEXT    UNIQUE,
    email_verified  INTEGER NOT NULL DEFAULT 0,
    -- bcrypt; NULL for guests and accounts that only sign in through OIDC.
    password_hash   TEXT,
    oidc_issuer     TEXT,
    oidc_subject    TEXT,
    is_guest        INTEGER NOT NULL DEFAULT 0,
    -- Set by a first OIDC sign-in until the person picks a username.
    needs_username  INTEGER NOT NULL DEFAULT 0,
    -- Base32 TOTP secret once two-factor is on.
    totp_secret     TEXT,
    created_at      INTEGER NOT NULL,
    last_login_at   INTEGER,
    -- A secret being set up, until the first code proves the app has it.
    totp_pending    TEXT,
    -- The last accepted time step: a code is never accepted twice.
    totp_last_step  INTEGER,
    -- When the account's address was first verified (and the welcome mail
    -- queued); NULL until then.
    welcomed_at     INTEGER,
    UNIQUE (oidc_issuer, oidc_subject)
);

-- Two-factor recovery codes not used yet: SHA-256 of the user id and the
-- code (src/auth/recovery_codes.rs). A code is deleted when it is used.
CREATE TABLE recovery_codes (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  BLOB    NOT NULL,
    PRIMARY KEY (user_id, code_hash)
) WITHOUT ROWID;

-- Profile pictures, at most 1 MB each, kept in the database so a backup of
-- it holds them. Served at /avatars/<token>: a new picture gets a new token,
-- so the URL can be cached for good.
CREATE TABLE avatars (
    user_id       INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    token         TEXT    NOT NULL UNIQUE,
    content_type  TEXT    NOT NULL,
    bytes         BLOB    NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE roles (
    id       INTEGER PRIMARY KEY,
    name     TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    builtin  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE permissions (
    id       INTEGER PRIMARY KEY,
    name     TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    builtin  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE role_permissions (
    role_id        INTEGER NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    permission_id  INTEGER NOT NULL REFERENCES permissions (id) ON DELETE CASCADE,
    PRIMARY KEY (role_id, permission_id)
) WITHOUT ROWID;

CREATE TABLE user_roles (
    user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id  INTEGER NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role_id)
) WITHOUT ROWID;

CREATE INDEX user_roles_by_role ON user_roles (role_id);

-- Server-side sessions. Only the SHA-256 of the cookie token is stored.
CREATE TABLE sessions (
    id               INTEGER PRIMARY KEY,
    token_hash       BLOB    NOT NULL UNIQUE,
    -- What the owner lists and ends the session by: random, never the token.
    public_id        TEXT    NOT NULL UNIQUE,
    user_id          INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Where the session was created: an IP ban ends the sessions made there.
    ip               TEXT    NOT NULL,
    user_agent       TEXT    NOT NULL DEFAULT '',
    -- Where, and with which browser, it was last used.
    last_ip          TEXT    NOT NULL,
    last_user_agent  TEXT    NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    last_seen_at     INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL
);

CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE bans (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER REFERENCES users (id) ON DELETE CASCADE,
    ip          TEXT,
    reason      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    created_by  INTEGER REFERENCES users (id) ON DELETE SET NULL,
    -- Set on unban; a lifted ban stays for the record.
    lifted_at   INTEGER,
    CHECK (user_id IS NOT NULL OR ip IS NOT NULL)
);

CREATE INDEX bans_by_user ON bans (user_id);
CREATE INDEX bans_by_ip ON bans (ip);

CREATE TABLE rooms (
    id          INTEGER PRIMARY KEY,
    code        TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    created_by  INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at  INTEGER NOT NULL
);

INSERT INTO rooms (code, name, created_by, created_at) VALUES ('lobby', 'Lobby', NULL, 0);

CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    room_id     INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id     INTEGER REFERENCES users (id) ON DELETE SET NULL,
    -- The sender's username when the message was sent: history outlives accounts.
    username    TEXT    NOT NULL,
    text        TEXT    NOT NULL,
    ts          INTEGER NOT NULL,
    ip          TEXT    NOT NULL,
    nonce       TEXT,
    attachment  TEXT,
    -- The sender's display name when the message was sent. It may be NULL
    -- only because it was added to a table with rows (the migration gave
    -- those their username).
    display_name TEXT
);

CREATE INDEX messages_by_room ON messages (room_id, id);
CREATE INDEX messages_by_user ON messages (user_id);
CREATE INDEX messages_by_ts ON messages (ts);

-- Files posted in rooms. The bytes live in DATA_DIR/uploads/<stored_as>;
-- the name a person gave the file is only ever shown, never used as a path.
-- A file is served at /files/<its room's code>/<token>: the token (128
-- random bits) cannot be guessed, and the room code is what lets anyone read
-- the room at all.
CREATE TABLE uploads (
    id            INTEGER PRIMARY KEY,
    room_id       INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id       INTEGER REFERENCES users (id) ON DELETE SET NULL,
    name          TEXT    NOT NULL,
    size          INTEGER NOT NULL,
    content_type  TEXT    NOT NULL,
    stored_as     TEXT    NOT NULL UNIQUE,
    token         TEXT    NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL
);

-- Per-user quotas add up a user's files.
CREATE INDEX uploads_by_user ON uploads (user_id);

-- Mail waiting to go out: written in the same transaction as what caused
-- it, sent by the mailer (src/mail/mailer.rs), deleted once sent or given up.
CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY,
    -- verify_email, password_reset, welcome, email_changed, ...
    kind             TEXT    NOT NULL,
    to_address       TEXT    NOT NULL,
    subject          TEXT    NOT NULL,
    -- The text and HTML bodies, sealed under SECRET_KEY: they carry one-time links.
    body             TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    -- Past this the mail is worthless (its link has expired) and is dropped.
    discard_at       INTEGER,
    last_error       TEXT
);

CREATE INDEX outbox_due ON outbox (next_attempt_at);

-- One-time links: verifying an address, resetting a password. Only the
-- SHA-256 of the token is stored; `email` is the address the link proves.
CREATE TABLE account_tokens (
    id          INTEGER PRIMARY KEY,
    -- verify_email or password_reset
    purpose     TEXT    NOT NULL,
    token_hash  BLOB    NOT NULL UNIQUE,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

CREATE INDEX account_tokens_by_user ON account_tokens (user_id, purpose);

-- Invitations to register (REGISTRATION=invite). Only the code's SHA-256 is stored.
CREATE TABLE invites (
    id          INTEGER PRIMARY KEY,
    code_hash   BLOB    NOT NULL UNIQUE,
    -- Registrations it allows, as made and still left.
    uses        INTEGER NOT NULL,
    uses_left   INTEGER NOT NULL,
    created_by  INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

CREATE TABLE audit_log (
    id              INTEGER PRIMARY KEY,
    ts              INTEGER NOT NULL,
    -- The actor; NULL for the system or an anonymous client.
    user_id         INTEGER REFERENCES users (id) ON DELETE SET NULL,
    -- The actor's name at the time (or the login that was tried).
    username        TEXT,
    ip              TEXT,
    action          TEXT    NOT NULL,
    room            TEXT,
    target_user_id  INTEGER,
    -- A JSON object.
    details         TEXT    NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_by_ts ON audit_log (ts);
CREATE INDEX audit_by_user ON audit_log (user_id);
CREATE INDEX audit_by_action ON audit_log (action, ts);

-- Built-in roles and permissions. The admin role holds every permission,
-- including ones created later (src/db/roles.rs), so it has no rows here.
INSERT INTO roles (name, builtin) VALUES ('admin', 1), ('moderator', 1), ('user', 1), ('guest', 1);

INSERT INTO permissions (name, builtin) VALUES
    ('admin.users', 1), ('admin.roles', 1), ('admin.logs', 1), ('admin.messages', 1),
    ('sessions.view', 1), ('sessions.kick', 1), ('sessions.move', 1),
    ('bans.manage', 1), ('rooms.create', 1), ('files.upload', 1), ('voice.mute', 1), ('voice.deafen', 1);

INSERT INTO role_permissions (role_id, permission_id)
    SELECT r.id, p.id FROM roles r, permissions p
    WHERE (r.name = 'moderator' AND p.name IN ('sessions.view', 'sessions.kick', 'sessions.move', 'rooms.create', 'files.upload',
                                              'voice.mute', 'voice.deafen'))
       OR (r.name = 'user' AND p.name IN ('rooms.create', 'files.upload'))
       OR (r.name = 'guest' AND p.name = 'rooms.create');
