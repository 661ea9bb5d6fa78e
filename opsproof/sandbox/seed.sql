-- Data shaped like the runbooks' platforms: users, wallets, transactions, compliance alerts,
-- settlements and reconciliation logs. Deterministic (setseed) so counts are stable across runs.
SELECT setseed(0.42);

CREATE TABLE users (
    id          bigserial PRIMARY KEY,
    email       text NOT NULL UNIQUE,
    status      text NOT NULL DEFAULT 'active',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE wallets (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users(id),
    currency    text NOT NULL,
    balance     numeric(18, 2) NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE transactions (
    id          bigserial PRIMARY KEY,
    wallet_id   bigint NOT NULL REFERENCES wallets(id),
    amount      numeric(18, 2) NOT NULL,
    status      text NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_transactions_status_created ON transactions(status, created_at);
CREATE TABLE compliance_alerts (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users(id),
    rule        text NOT NULL,
    status      text NOT NULL CHECK (status IN ('open', 'investigating', 'closed')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE settlements (
    id          bigserial PRIMARY KEY,
    batch       text NOT NULL,
    amount      numeric(18, 2) NOT NULL,
    status      text NOT NULL CHECK (status IN ('pending', 'settled', 'failed')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE reconciliation_logs (
    id            bigserial PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users(id),
    expected      numeric(18, 2) NOT NULL,
    actual        numeric(18, 2) NOT NULL,
    discrepancy   numeric(18, 2) GENERATED ALWAYS AS (actual - expected) STORED,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_reconciliation_user_created ON reconciliation_logs(user_id, created_at DESC);

INSERT INTO users (email, status, created_at)
SELECT 'user' || n || '@example.com', CASE WHEN n % 50 = 0 THEN 'suspended' ELSE 'active' END,
       now() - (n || ' hours')::interval
FROM generate_series(1, 500) AS n;

INSERT INTO wallets (user_id, currency, balance, created_at)
SELECT u.id, c.currency, round((random() * 10000)::numeric, 2), u.created_at
FROM users u CROSS JOIN (VALUES ('EUR'), ('USD')) AS c(currency);

-- 5000 transactions over the last 10 days; 6 failed in the last 24 hours, older failures beyond it
INSERT INTO transactions (wallet_id, amount, status, created_at)
SELECT 1 + (n % 1000), round((random() * 500)::numeric, 2),
       CASE WHEN n % 997 = 0 THEN 'pending' ELSE 'completed' END,
       now() - ((n * 170) || ' seconds')::interval
FROM generate_series(1, 5000) AS n;
INSERT INTO transactions (wallet_id, amount, status, created_at)
SELECT 1 + n, 10.00, 'failed', now() - (n * 3 || ' hours')::interval
FROM generate_series(1, 6) AS n;
INSERT INTO transactions (wallet_id, amount, status, created_at)
SELECT 1 + n, 10.00, 'failed', now() - ((30 + n) || ' hours')::interval
FROM generate_series(1, 20) AS n;

INSERT INTO compliance_alerts (user_id, rule, status, created_at)
SELECT 1 + (n % 500), (ARRAY['velocity', 'sanctions', 'structuring'])[1 + n % 3],
       CASE WHEN n <= 3 THEN 'open' WHEN n <= 5 THEN 'investigating' ELSE 'closed' END,
       now() - (n || ' days')::interval
FROM generate_series(1, 40) AS n;

INSERT INTO settlements (batch, amount, status, created_at)
SELECT 'B' || to_char(now() - (n || ' hours')::interval, 'YYYYMMDDHH24'), round((random() * 100000)::numeric, 2),
       CASE WHEN n <= 2 THEN 'pending' ELSE 'settled' END,
       now() - ((n * 20) || ' minutes')::interval
FROM generate_series(1, 100) AS n;

INSERT INTO reconciliation_logs (user_id, expected, actual, created_at)
SELECT 1 + (n % 500), 100.00, CASE WHEN n % 400 = 0 THEN 99.50 ELSE 100.00 END,
       now() - ((n * 60) || ' seconds')::interval
FROM generate_series(1, 2000) AS n;

ANALYZE;
