# pg_dump | psql into a second cluster: chainstore's history, proofs and batches
# come along (pg_extension_config_dump), and every hash, proof and the table
# fingerprint verify there unchanged.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $src = PostgreSQL::Test::Cluster->new('source');
$src->init;
$src->start;
$src->safe_psql('postgres', q{
    CREATE EXTENSION chainstore;
    CREATE TYPE mood AS ENUM ('ok', 'meh');
    CREATE TABLE listings (
        id bigint PRIMARY KEY, title text, price numeric(12,2), listed_at timestamptz,
        tags text[], meta jsonb, mood mood, ratio float8, dropped_later int);
    INSERT INTO listings
        SELECT g, 'listing ' || g, g * 1.25, '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 hour',
               ARRAY['a', 'b' || g], jsonb_build_object('n', g, 'x', 1.50), 'ok', g / 3.0, NULL
          FROM generate_series(1, 200) g;
    SELECT chainstore.track('listings', backfill => true);
    UPDATE listings SET price = price + 1 WHERE id % 7 = 0;
    DELETE FROM listings WHERE id % 11 = 0;
    SELECT chainstore.seal_batch(100);
    SELECT chainstore.seal_batch(100);
    UPDATE listings SET title = 'changed' WHERE id = 3;
    ALTER TABLE listings DROP COLUMN dropped_later;
    UPDATE listings SET mood = 'meh' WHERE id = 5;
});

my $summary = q{
    SELECT (SELECT count(*) FROM chainstore.versions),
           (SELECT count(*) FROM chainstore.batches),
           (SELECT count(*) FROM chainstore.proofs),
           (SELECT count(*) FROM chainstore.outbox),
           (SELECT encode(chainstore.sha256(string_agg(record_hash || chain_hash || leaf, '' ORDER BY version_id)), 'hex')
              FROM chainstore.versions),
           (SELECT encode(chainstore.sha256(string_agg(batch_hash, '' ORDER BY batch_id)), 'hex') FROM chainstore.batches)
};
my $fingerprint = q{SELECT encode(chainstore.table_fingerprint('listings'), 'hex')};
my $before = $src->safe_psql('postgres', $summary);
my $fp_before = $src->safe_psql('postgres', $fingerprint);

my $dst = PostgreSQL::Test::Cluster->new('restored');
$dst->init;
$dst->start;
my $dumpfile = $PostgreSQL::Test::Utils::tmp_check . '/dump.sql';
$src->command_ok([ 'pg_dump', '-d', $src->connstr('postgres'), '-f', $dumpfile ], 'pg_dump');
$dst->safe_psql('postgres', 'CREATE DATABASE restored');
$dst->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $dst->connstr('restored'), '-f', $dumpfile ],
    'restore into a new cluster');

is($dst->safe_psql('restored', $summary), $before, 'history, proofs and batches restored byte for byte');
is($dst->safe_psql('restored', $fingerprint), $fp_before, 'table fingerprint equal after restore');

# hashes recomputed from the restored rows match the restored history
my $problems = q{SELECT count(*) FROM chainstore.verify_table('listings')};
is($src->safe_psql('postgres', $problems), '0', 'no problems in the source');
is($dst->safe_psql('restored', $problems), '0', 'no problems after restore');
is($dst->safe_psql('restored',
    q{SELECT bool_and((chainstore.verify_batch(batch_id)).ok) FROM chainstore.batches}), 't',
    'every batch verifies after restore');
is($dst->safe_psql('restored', q{SELECT status FROM chainstore.verify_row('listings', '{"id": 3}')}),
    'pending', 'a captured row verifies after restore');

# capture keeps working in the restored database, chaining to restored history
$dst->safe_psql('restored', q{UPDATE listings SET price = 1 WHERE id = 3});
is($dst->safe_psql('restored', q{SELECT max(version) FROM chainstore.versions
                                  WHERE record_key = chainstore.record_key('listings', '{"id": 3}')}),
    '3', 'capture continues the restored chain');
is($dst->safe_psql('restored', q{SELECT status FROM chainstore.verify_row('listings', '{"id": 3}')}),
    'pending', 'the continued chain verifies');
is($dst->safe_psql('restored', q{SELECT chainstore.seal_batch() > 2}), 't',
    'sealing continues the restored batch chain');
is($dst->safe_psql('restored',
    q{SELECT bool_and((chainstore.verify_batch(batch_id)).ok) FROM chainstore.batches}), 't',
    'the continued batch chain verifies');

done_testing();
