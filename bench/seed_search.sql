-- Seeds organizations with conversations and messages for measuring lists and search (decision 0041).
-- Run as the database owner (row-level security does not bind it), on a migrated database:
--   psql -v orgs=21 -v big_conversations=60000 -v small_conversations=3000 -v messages_per=10 -f bench/seed_search.sql
-- The first organization is the big one; the others are its neighbours. Words are drawn log-uniformly
-- from a vocabulary of 20,000 (`w1` is in about one token in ten, `w10000` in one in 200,000), so
-- searches of every selectivity can be measured. Messages of all organizations are interleaved in time,
-- as in a shared database.
\set ON_ERROR_STOP on
BEGIN;
CREATE TEMP TABLE seed_orgs AS
  SELECT n, gen_random_uuid() AS id,
         CASE WHEN n = 1 THEN :big_conversations ELSE :small_conversations END AS conversations
  FROM generate_series(1, :orgs) AS n;
INSERT INTO organizations (id, name, slug) SELECT id, 'seed ' || n, 'seed-' || n || '-' || substr(id::text, 1, 8) FROM seed_orgs;
CREATE TEMP TABLE seed_users AS
  SELECT o.id AS organization_id, gen_random_uuid() AS id, k FROM seed_orgs o, generate_series(1, 20) AS k;
CREATE INDEX ON seed_users (organization_id, k);
INSERT INTO users (id, email, email_normalized, password_hash)
  SELECT id, id || '@seed.example', id || '@seed.example', 'x' FROM seed_users;
INSERT INTO memberships (organization_id, user_id, role) SELECT organization_id, id, 'agent' FROM seed_users;
CREATE TEMP TABLE seed_inboxes AS
  SELECT o.id AS organization_id, gen_random_uuid() AS id, k FROM seed_orgs o, generate_series(1, 5) AS k;
CREATE INDEX ON seed_inboxes (organization_id, k);
INSERT INTO inboxes (id, organization_id, name, kind) SELECT id, organization_id, 'inbox ' || k, 'api' FROM seed_inboxes;
CREATE TEMP TABLE seed_teams AS
  SELECT o.id AS organization_id, gen_random_uuid() AS id, k FROM seed_orgs o, generate_series(1, 3) AS k;
CREATE INDEX ON seed_teams (organization_id, k);
INSERT INTO teams (id, organization_id, name) SELECT id, organization_id, 'team ' || k FROM seed_teams;
CREATE TEMP TABLE seed_contacts AS
  SELECT o.id AS organization_id, gen_random_uuid() AS id, k
  FROM seed_orgs o, generate_series(1, greatest(o.conversations / 2, 1)) AS k;
CREATE INDEX ON seed_contacts (organization_id, k);
INSERT INTO contacts (id, organization_id, name, email)
  SELECT id, organization_id,
         (ARRAY['Ada','Grace','Alan','Edsger','Barbara','Donald','Ken','Margaret'])[1 + k % 8] || ' '
           || (ARRAY['Lovelace','Hopper','Turing','Dijkstra','Liskov','Knuth','Thompson','Hamilton','Moreno'])[1 + (k / 8) % 9]
           || ' ' || k,
         'person' || k || '@customer' || (k % 50) || '.example'
  FROM seed_contacts;
CREATE TEMP TABLE seed_conversations AS
  SELECT o.id AS organization_id, gen_random_uuid() AS id, k,
         now() - random() * interval '365 days' AS created_at, random() AS r
  FROM seed_orgs o, generate_series(1, o.conversations) AS k;
INSERT INTO conversations (id, organization_id, number, inbox_id, contact_id, subject, status, snoozed_until,
                           priority, assignee_id, team_id, tags, last_activity_at, updated_at, created_at)
  SELECT c.id, c.organization_id, c.k,
         (SELECT i.id FROM seed_inboxes i WHERE i.organization_id = c.organization_id AND i.k = 1 + c.k % 5),
         (SELECT t.id FROM seed_contacts t WHERE t.organization_id = c.organization_id
            AND t.k = 1 + (c.k * 7919) % greatest((SELECT o.conversations FROM seed_orgs o WHERE o.id = c.organization_id) / 2, 1)),
         (SELECT string_agg('w' || floor(exp(random() * ln(20000)))::int, ' ') FROM generate_series(1, 3 + c.k % 4)),
         CASE WHEN c.r < 0.10 THEN 'open' WHEN c.r < 0.15 THEN 'pending' WHEN c.r < 0.17 THEN 'snoozed' ELSE 'resolved' END,
         CASE WHEN c.r >= 0.15 AND c.r < 0.17 THEN now() + interval '1 day' END,
         (ARRAY['none','none','low','normal','normal','high','urgent'])[1 + c.k % 7],
         CASE WHEN c.k % 10 = 0 THEN NULL ELSE
           (SELECT u.id FROM seed_users u WHERE u.organization_id = c.organization_id AND u.k = 1 + (c.k * 31) % 20) END,
         (SELECT t.id FROM seed_teams t WHERE t.organization_id = c.organization_id AND t.k = 1 + c.k % 3),
         CASE c.k % 4 WHEN 0 THEN '{}'::varchar[] WHEN 1 THEN ARRAY['tag' || c.k % 30]
              ELSE ARRAY['tag' || c.k % 30, 'tag' || (c.k / 30) % 30] END,
         c.created_at + random() * interval '10 days', c.created_at + random() * interval '10 days', c.created_at
  FROM seed_conversations c;
INSERT INTO messages (id, organization_id, conversation_id, kind, private, body, author_type, created_at)
  SELECT gen_random_uuid(), c.organization_id, c.id,
         (ARRAY['incoming','incoming','incoming','outgoing','outgoing','outgoing','note','incoming','outgoing','activity'])[1 + (c.k + m) % 10],
         (c.k + m) % 10 IN (6, 9),
         (SELECT string_agg('w' || floor(exp(random() * ln(20000)))::int, ' ') FROM generate_series(1, 8 + (c.k * m) % 23)),
         'contact', c.created_at + m * interval '1 hour'
  FROM seed_conversations c, generate_series(1, :messages_per) AS m
  ORDER BY c.created_at + m * interval '1 hour';
INSERT INTO conversation_counters (organization_id, last_number) SELECT id, conversations FROM seed_orgs;
COMMIT;
VACUUM ANALYZE organizations, memberships, inboxes, teams, contacts, conversations, messages;
SELECT id AS big_organization FROM organizations WHERE name = 'seed 1' ORDER BY created_at DESC LIMIT 1;
