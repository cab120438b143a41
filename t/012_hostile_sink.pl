# Hostile sink: the worker delivers to a peer that answers garbage JSON, a
# wrong CID, 500s, 429 with Retry-After, hangs, cuts the body or answers too
# slowly (test/hostile-sink/server.mjs, one server per mode, one sink per
# server).  For each misbehaviour the worker survives (same pid, no crash in
# the log), records the error (chainstore.attempts, deliveries.last_error),
# classifies it (permanent: dead letter after one attempt; transient: retried
# with exponential backoff and jitter, bounded by chainstore.max_attempts,
# Retry-After honoured), obeys its timeouts, opens the endpoint's circuit, and
# keeps delivering to a healthy sink meanwhile.  Then: chainstore.retry() of a
# dead letter repointed to a real IPFS node, the manual circuit override, and
# a fast shutdown while a request hangs.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use HTTP::Tiny;
use ChainstoreTest;

my $BASE_MS = 200;       # chainstore.retry_base_storage
my $MAX_ATTEMPTS = 5;    # chainstore.max_attempts
my $TIMEOUT_MS = 1500;   # chainstore.request_timeout
my $OPEN_S = 2;          # chainstore.breaker_open_time
my $SLACK_MS = 400;      # scheduling slack above a computed delay

my $ipfs = start_ipfs();     # the healthy sink
my $ipfs2 = start_ipfs();    # where a dead letter is delivered after chainstore.retry()
my %hs = map { $_ => start_hostile($_) } qw(garbage-json wrong-cid http500 cut-body http429 hang slow);
# stop the peers even if the test dies half-way (both stops are idempotent)
END
{
	local $?;
	eval { stop_hostile($_) for values %hs; stop_ipfs($ipfs); stop_ipfs($ipfs2); };
}

my $node = new_preloaded_node('hostile', conf => [
	"chainstore.retry_base_storage = $BASE_MS",
	'chainstore.retry_max_delay = 2000',
	"chainstore.max_attempts = $MAX_ATTEMPTS",
	"chainstore.request_timeout = $TIMEOUT_MS",
	'chainstore.connect_timeout = 1000',
	'chainstore.breaker_min_requests = 3',
	"chainstore.breaker_open_time = $OPEN_S",
	'chainstore.verify_delay = 2',
	# this test is about delivery: no head checks among the counted requests
	'chainstore.reconcile_interval = 0' ]);
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(qq{
	CREATE EXTENSION chainstore;
	CREATE TABLE items (id bigint PRIMARY KEY, note text);
	SELECT chainstore.track('items');
	SELECT chainstore.add_sink('good', 'ipfs', ARRAY['$ipfs->{url}']);
});
for my $mode (sort keys %hs)
{
	sql(qq{SELECT chainstore.add_sink('$mode', 'ipfs', ARRAY['$hs{$mode}{url}'], '{}', false)});
}

sub worker_pids
{
	return sql(q{SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE backend_type = 'chainstore worker'});
}
ok(wait_for_sql($node, q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'chainstore worker'}, '1', 30),
	'the chainstore worker runs');
my $pid0 = worker_pids();
note("worker pid $pid0");

sub same_worker
{
	my ($when) = @_;
	is(worker_pids(), $pid0, "$when: still the same worker process (pid $pid0), no crash or restart");
}

sub set_enabled
{
	my ($sink, $on) = @_;
	sql(qq{SELECT chainstore.alter_sink('$sink', enabled => $on)});
}

# Insert rows and seal them in the same transaction: the batch goes to the
# sinks enabled now, and the worker never sees the rows unsealed.
my $next_id = 0;
sub seal_batches
{
	my ($nbatches, $note) = @_;
	my $from = $next_id + 1;
	$next_id += $nbatches;
	my $sql = "BEGIN;\nINSERT INTO items SELECT g, '$note' FROM generate_series($from, $next_id) g;\n"
	  . ("SELECT chainstore.seal_batch(1);\n" x $nbatches) . "COMMIT;\n";
	my @b = split /\n/, sql($sql);
	die "expected $nbatches batches, got [@b]" unless @b == $nbatches;
	return wantarray ? @b : $b[0];
}

sub dcol
{
	my ($batch, $sink, $expr) = @_;
	return sql(qq{SELECT $expr FROM chainstore.deliveries d JOIN chainstore.sinks s USING (sink_id)
	             WHERE d.batch_id = $batch AND s.name = '$sink'});
}

sub wait_state
{
	my ($batch, $sink, $state, $timeout) = @_;
	return wait_for_sql($node, qq{SELECT d.state FROM chainstore.deliveries d JOIN chainstore.sinks s USING (sink_id)
	                               WHERE d.batch_id = $batch AND s.name = '$sink'}, $state, $timeout);
}

sub attempts_of
{
	my ($batch, $sink, $expr) = @_;
	return sql(qq{SELECT $expr FROM chainstore.attempts a JOIN chainstore.sinks s USING (sink_id)
	             WHERE a.batch_id = $batch AND s.name = '$sink'});
}

# ms from the end of attempt n to the start of attempt n+1, n = 1..
sub gaps
{
	my ($batch, $sink) = @_;
	my @g = split /\n/, sql(qq{
		SELECT round((extract(epoch FROM a.started_at - lag(a.started_at) OVER w) * 1000
		              - lag(a.duration_ms) OVER w)::numeric, 1)
		  FROM chainstore.attempts a JOIN chainstore.sinks s USING (sink_id)
		 WHERE a.batch_id = $batch AND s.name = '$sink'
		WINDOW w AS (ORDER BY a.attempt_id) ORDER BY a.attempt_id});
	shift @g;
	return @g;
}

# the equal-jitter window of the delay after attempt n: [d/2, d], d = base * 2^(n-1)
sub backoff_window
{
	my ($n) = @_;
	my $d = $BASE_MS * 2**($n - 1);
	$d = 2000 if $d > 2000;    # chainstore.retry_max_delay
	return ($d / 2, $d);
}

sub stats_settle
{
	my ($hsrv) = @_;
	usleep(1_000_000);
	return hostile_stats($hsrv);
}

sub circuit_of
{
	my ($url, $cols) = @_;
	return sql(qq{SELECT $cols FROM chainstore.circuit_states() WHERE endpoint = '$url'});
}

my $b_garbage;    # its dead letter is retried later
###########################################################################
# garbage JSON: permanent, dead after exactly one attempt
###########################################################################
{
	my $sink = 'garbage-json';
	set_enabled($sink, 'true');
	my $b = seal_batches(1, 'garbage');
	ok(wait_state($b, $sink, 'dead', 20), 'garbage-json: delivery dead-lettered');
	is(dcol($b, $sink, 'attempts'), '1', 'garbage-json: after exactly one attempt');
	like(dcol($b, $sink, 'last_error'), qr/IPFS node answered without a CID: not a JSON object/,
		'garbage-json: last_error says the answer is not JSON');
	is(attempts_of($b, $sink, q{count(*) || '|' || bool_or(ok) || '|' || min(http_status) || '|' || min(step)}),
		'1|false|200|submit', 'garbage-json: one failed submit attempt recorded, HTTP 200');
	is(dcol($b, $sink, q{attestation IS NULL AND payload IS NOT NULL AND payload_id = chainstore.ipfs_cid(payload)}), 't',
		'garbage-json: no attestation; payload and its CID were recorded before the send');
	my $st = stats_settle($hs{$sink});
	is($st->{paths}{'/api/v0/add'} // 0, 1, 'garbage-json: the server saw exactly one add');
	is($st->{total}, 1, 'garbage-json: and nothing else (no retry)');
	set_enabled($sink, 'false');
	$b_garbage = $b;
	same_worker('after garbage-json');
}

###########################################################################
# wrong CID: permanent, dead after one attempt, the wrong CID never recorded
###########################################################################
{
	my $sink = 'wrong-cid';
	set_enabled($sink, 'true');
	my $b = seal_batches(1, 'wrong-cid');
	ok(wait_state($b, $sink, 'dead', 20), 'wrong-cid: delivery dead-lettered');
	is(dcol($b, $sink, 'attempts'), '1', 'wrong-cid: after exactly one attempt');
	my $err = dcol($b, $sink, 'last_error');
	my $ours = dcol($b, $sink, 'payload_id');
	like($err, qr/^IPFS node answered CID (\S+), chainstore computed \Q$ours\E$/,
		'wrong-cid: last_error names both CIDs');
	my ($theirs) = $err =~ /answered CID (\S+),/;
	ok(defined $theirs && $theirs ne $ours && sql(qq{SELECT chainstore.cid_is_valid('$theirs')}) eq 't',
		'wrong-cid: the node answered a valid CID that is not ours');
	is(dcol($b, $sink, q{coalesce(attestation::text, 'none') || '|' || coalesce(endpoint, 'none')}), 'none|none',
		'wrong-cid: the wrong CID is not recorded as an attestation');
	my $st = stats_settle($hs{$sink});
	is($st->{paths}{'/api/v0/add'} // 0, 1, 'wrong-cid: the server saw exactly one add');
	is($st->{total}, 1, 'wrong-cid: and nothing else');
	set_enabled($sink, 'false');
	same_worker('after wrong-cid');
}

###########################################################################
# HTTP 500: transient; backoff doubles within its jitter window, bounded by
# max_attempts.  The circuit is held closed here so that only the backoff
# sets the pace; the breaker is checked next.
###########################################################################
{
	my $sink = 'http500';
	my $url = $hs{$sink}{url};
	sql(qq{SELECT chainstore.circuit('$url', 'closed')});
	set_enabled($sink, 'true');
	my $t0 = time();
	my $b = seal_batches(1, 'http500');
	ok(wait_state($b, $sink, 'dead', 30), 'http500: dead-lettered in the end');
	note(sprintf('http500: %d attempts took %.1f s', $MAX_ATTEMPTS, time() - $t0));
	is(dcol($b, $sink, 'attempts'), $MAX_ATTEMPTS, "http500: after chainstore.max_attempts = $MAX_ATTEMPTS attempts");
	is(attempts_of($b, $sink, q{count(*) || '|' || bool_or(ok) || '|' || min(http_status) || '|' || max(http_status)}),
		"$MAX_ATTEMPTS|false|500|500", "http500: $MAX_ATTEMPTS failed attempts with HTTP 500 recorded");
	like(dcol($b, $sink, 'last_error'), qr/^HTTP 500: .*hostile-sink: internal error/,
		'http500: last_error keeps the status and the node\'s message');
	my @g = gaps($b, $sink);
	is(scalar(@g), $MAX_ATTEMPTS - 1, 'http500: one gap per retry');
	for my $n (1 .. @g)
	{
		my ($lo, $hi) = backoff_window($n);
		my $gap = $g[ $n - 1 ];
		ok($gap >= $lo - 5 && $gap <= $hi + $SLACK_MS,
			"http500: delay after attempt $n is ${gap} ms, within jitter window [$lo, $hi] ms (+${SLACK_MS} ms slack)");
	}
	ok($g[3] > $g[0], "http500: delays grow ($g[0] ms before attempt 2, $g[3] ms before attempt 5)");
	my $st = stats_settle($hs{$sink});
	is($st->{paths}{'/api/v0/add'} // 0, $MAX_ATTEMPTS, "http500: the server saw exactly $MAX_ATTEMPTS adds");
	set_enabled($sink, 'false');
	same_worker('after http500 backoff');
}

###########################################################################
# HTTP 500 with the breaker in charge: the circuit opens after
# breaker_min_requests failures; then only half-open probes get through.
###########################################################################
{
	my $sink = 'http500';
	my $url = $hs{$sink}{url};
	sql(qq{SELECT chainstore.circuit('$url', 'auto')});
	is(circuit_of($url, 'state || mode'), 'closedauto', 'breaker: back to auto, closed');
	hostile_reset($hs{$sink});
	my $attempts_before = sql(qq{SELECT count(*) FROM chainstore.attempts WHERE endpoint = '$url'});
	set_enabled($sink, 'true');
	my @b = seal_batches(6, 'breaker');
	ok(wait_for_sql($node, qq{SELECT state FROM chainstore.circuit_states() WHERE endpoint = '$url'}, 'open', 15),
		'breaker: the circuit of the failing endpoint opens');
	like(circuit_of($url, 'last_error'), qr/^HTTP 500/, 'breaker: circuit_states keeps the last error');
	my $s0 = hostile_stats($hs{$sink})->{total};
	my $t0 = time();
	usleep(5_000_000);
	my $s1 = hostile_stats($hs{$sink})->{total};
	my $window = time() - $t0;
	my $probes = $s1 - $s0;
	note(sprintf('breaker: %d requests before the circuit opened, %d in the next %.1f s', $s0, $probes, $window));
	cmp_ok($probes, '<=', int($window / $OPEN_S) + 1,
		"breaker: while open, at most one probe per breaker_open_time ($probes requests in ${\ sprintf('%.1f', $window)} s)");
	cmp_ok($probes, '>=', 1, 'breaker: half-open probes do go out');
	my $blist = join(',', @b);
	cmp_ok(sql(qq{SELECT count(*) FROM chainstore.deliveries d JOIN chainstore.sinks s USING (sink_id)
	             WHERE s.name = '$sink' AND d.batch_id IN ($blist) AND d.state = 'in_flight'}), '>', 0,
		'breaker: deliveries held back by the open circuit are still queued, not dead');
	set_enabled($sink, 'false');
	usleep(500_000);
	my $st = stats_settle($hs{$sink});
	is(sql(qq{SELECT count(*) FROM chainstore.attempts WHERE endpoint = '$url'}) - $attempts_before, $st->{total},
		'breaker: every request the server saw is recorded as an attempt');
	is(sql(qq{SELECT sum(d.attempts) FROM chainstore.deliveries d JOIN chainstore.sinks s USING (sink_id)
	        WHERE s.name = '$sink' AND d.batch_id IN ($blist)}), $st->{total},
		'breaker: deferral by an open circuit spends no attempts');
	same_worker('after http500 breaker');
}

###########################################################################
# cut body: transient (curl: partial file), circuit opens after 3 failures,
# attempts 4 and 5 only after breaker_open_time
###########################################################################
{
	my $sink = 'cut-body';
	my $url = $hs{$sink}{url};
	set_enabled($sink, 'true');
	my $b = seal_batches(1, 'cut-body');
	ok(wait_state($b, $sink, 'dead', 40), 'cut-body: dead-lettered in the end');
	is(dcol($b, $sink, 'attempts'), $MAX_ATTEMPTS, "cut-body: after $MAX_ATTEMPTS attempts");
	is(attempts_of($b, $sink, q{count(*) || '|' || bool_or(ok) || '|' || count(http_status)}), "$MAX_ATTEMPTS|false|0",
		'cut-body: failed attempts without an HTTP status (a cut body is no answer)');
	like(dcol($b, $sink, 'last_error'), qr/partial/i, 'cut-body: last_error names the partial transfer');
	my @g = gaps($b, $sink);
	is(scalar(@g), $MAX_ATTEMPTS - 1, 'cut-body: one gap per retry');
	for my $n (1 .. 2)
	{
		my ($lo, $hi) = backoff_window($n);
		ok($g[ $n - 1 ] >= $lo - 5 && $g[ $n - 1 ] <= $hi + $SLACK_MS,
			"cut-body: delay after attempt $n is $g[$n - 1] ms, within [$lo, $hi] ms (+${SLACK_MS} ms)");
	}
	for my $n (3 .. 4)
	{
		ok($g[ $n - 1 ] >= $OPEN_S * 1000 - 50,
			"cut-body: attempt " . ($n + 1) . " waited for the open circuit: $g[$n - 1] ms >= ${OPEN_S} s");
	}
	is(circuit_of($url, 'state'), 'open', 'cut-body: the circuit is open');
	like(circuit_of($url, 'last_error'), qr/partial/i, 'cut-body: circuit_states keeps the error');
	my $st = stats_settle($hs{$sink});
	is($st->{paths}{'/api/v0/add'} // 0, $MAX_ATTEMPTS, "cut-body: the server saw exactly $MAX_ATTEMPTS adds");
	is($st->{cut}, $MAX_ATTEMPTS, "cut-body: and cut all of them");
	set_enabled($sink, 'false');
	same_worker('after cut-body');
}

###########################################################################
# HTTP 429 with Retry-After: 2: no retry sooner than 2 s (circuit held
# closed so that only the backoff and Retry-After set the pace)
###########################################################################
{
	my $sink = 'http429';
	my $url = $hs{$sink}{url};
	sql(qq{SELECT chainstore.circuit('$url', 'closed')});
	set_enabled($sink, 'true');
	my $b = seal_batches(1, 'http429');
	ok(wait_state($b, $sink, 'dead', 40), 'http429: dead-lettered in the end');
	is(dcol($b, $sink, 'attempts'), $MAX_ATTEMPTS, "http429: after $MAX_ATTEMPTS attempts");
	is(attempts_of($b, $sink, q{count(*) || '|' || bool_or(ok) || '|' || min(http_status) || '|' || max(http_status)}),
		"$MAX_ATTEMPTS|false|429|429", 'http429: failed attempts with HTTP 429 recorded');
	like(dcol($b, $sink, 'last_error'), qr/^HTTP 429: .*too many requests/, 'http429: last_error keeps the 429');
	my @g = gaps($b, $sink);
	is(scalar(@g), $MAX_ATTEMPTS - 1, 'http429: one gap per retry');
	for my $n (1 .. @g)
	{
		my $gap = $g[ $n - 1 ];
		ok($gap >= 2000 - 5 && $gap <= 2000 + $SLACK_MS,
			"http429: retry $n came ${gap} ms after the 429, not before Retry-After (2 s)");
	}
	my $st = stats_settle($hs{$sink});
	is($st->{paths}{'/api/v0/add'} // 0, $MAX_ATTEMPTS, "http429: the server saw exactly $MAX_ATTEMPTS adds");
	sql(qq{SELECT chainstore.circuit('$url', 'auto')});
	set_enabled($sink, 'false');
	same_worker('after http429');
}

###########################################################################
# hang: every attempt ends at request_timeout; the healthy sink keeps
# delivering meanwhile, its requests running alongside the hung ones
###########################################################################
{
	my $sink = 'hang';
	my $url = $hs{$sink}{url};
	set_enabled($sink, 'true');
	my @b;
	push @b, seal_batches(1, 'hang');
	for my $i (1 .. 5)
	{
		usleep(1_000_000);
		push @b, seal_batches(1, 'hang');
	}
	my $blist = join(',', @b);
	ok(wait_for_sql($node, qq{SELECT count(*) FROM chainstore.deliveries d JOIN chainstore.sinks s USING (sink_id)
	                           WHERE s.name = 'good' AND d.batch_id IN ($blist) AND d.state = 'verified'}, '6', 30),
		'hang: the healthy sink delivered and verified every batch sealed during the hang phase');
	my $lat = sql(qq{SELECT round(max(extract(epoch FROM d.delivered_at - b.sealed_at)) * 1000)
	                FROM chainstore.deliveries d JOIN chainstore.sinks s USING (sink_id) JOIN chainstore.batches b USING (batch_id)
	               WHERE s.name = 'good' AND d.batch_id IN ($blist)});
	# a round waits for its slowest request: a batch sealed during a round that
	# holds a hung request waits for it, then rides in a round with its own
	# sibling delivery to the hanging sink
	cmp_ok($lat, '<=', 2 * $TIMEOUT_MS + 1000,
		"hang: healthy deliveries waited at most ${lat} ms from sealing (bounded by 2 x request_timeout)");
	is(sql(qq{SELECT count(*) FROM chainstore.deliveries d JOIN chainstore.sinks s USING (sink_id)
	        WHERE s.name = '$sink' AND d.batch_id IN ($blist) AND d.state NOT IN ('pending', 'in_flight', 'dead')}), '0',
		'hang: nothing counts as delivered to the hanging endpoint');
	my $n = sql(qq{SELECT count(*) FROM chainstore.attempts WHERE endpoint = '$url'});
	cmp_ok($n, '>=', 3, "hang: $n attempts at the hanging endpoint");
	is(sql(qq{SELECT count(*) FROM chainstore.attempts WHERE endpoint = '$url'
	        AND NOT ok AND http_status IS NULL AND error ~ 'Timeout was reached'}), $n,
		'hang: each one failed with a timeout, no HTTP status');
	my ($dmin, $dmax) = split /\|/, sql(qq{SELECT round(min(duration_ms)), round(max(duration_ms))
	                                      FROM chainstore.attempts WHERE endpoint = '$url'});
	ok($dmin >= $TIMEOUT_MS - 20 && $dmax <= $TIMEOUT_MS + 300,
		"hang: each attempt lasted about request_timeout = $TIMEOUT_MS ms ($dmin .. $dmax ms)");
	# healthy requests ran while a hung one was on the wire: their intervals overlap
	my $same_round = sql(qq{
		SELECT count(*) FROM chainstore.attempts g
		  JOIN chainstore.sinks gs ON gs.sink_id = g.sink_id AND gs.name = 'good'
		  JOIN chainstore.attempts h ON h.endpoint = '$url'
		   AND g.started_at >= h.started_at
		   AND g.started_at + make_interval(secs => g.duration_ms / 1000)
		       <= h.started_at + make_interval(secs => h.duration_ms / 1000)
		 WHERE g.ok});
	cmp_ok($same_round, '>=', 1,
		"hang: $same_round healthy requests succeeded while a hung one was in flight (sent concurrently)");
	# and such requests started together: started_at must not depend on how
	# long the other requests of the round took
	my $skew = sql(qq{
		SELECT coalesce(string_agg(format('good attempt %s (%s ms) started_at %s, hung attempt %s (%s ms) started_at %s',
		                                  g.attempt_id, round(g.duration_ms), to_char(g.started_at, 'HH24:MI:SS.MS'),
		                                  h.attempt_id, round(h.duration_ms), to_char(h.started_at, 'HH24:MI:SS.MS')), '; '), '')
		  FROM chainstore.attempts g
		  JOIN chainstore.sinks gs ON gs.sink_id = g.sink_id AND gs.name = 'good'
		  JOIN chainstore.attempts h ON h.endpoint = '$url' AND h.xmin = g.xmin
		 WHERE abs(extract(epoch FROM g.started_at - h.started_at)) > 0.2});
	is($skew, '', 'hang: attempts.started_at of requests sent in one round agree (within 200 ms)');
	like(circuit_of($url, 'state'), qr/^(open|half-open)$/, 'hang: the hanging endpoint\'s circuit opened');
	set_enabled($sink, 'false');
	my $deadline = time() + $TIMEOUT_MS / 1000 + 3;
	my $st = hostile_stats($hs{$sink});
	while ($st->{hung} > 0 && time() < $deadline)
	{
		usleep(200_000);
		$st = hostile_stats($hs{$sink});
	}
	is($st->{hung}, 0, 'hang: the worker closed every hung connection');
	usleep(500_000);
	my $n2 = sql(qq{SELECT count(*) FROM chainstore.attempts WHERE endpoint = '$url'});
	is(hostile_stats($hs{$sink})->{total}, $n2, "hang: every request the server saw is recorded as an attempt ($n2)");
	same_worker('after hang');
}

###########################################################################
# slow (5 s) with request_timeout 1.5 s: timeouts; with a longer timeout
# (SIGHUP) the same delivery goes through after chainstore.retry()
###########################################################################
{
	my $sink = 'slow';
	my $url = $hs{$sink}{url};
	set_enabled($sink, 'true');
	my $b = seal_batches(1, 'slow');
	ok(wait_state($b, $sink, 'dead', 60), 'slow: dead-lettered after timing out every time');
	is(dcol($b, $sink, 'attempts'), $MAX_ATTEMPTS, "slow: after $MAX_ATTEMPTS attempts");
	is(attempts_of($b, $sink, q{count(*) FILTER (WHERE NOT ok AND error ~ 'Timeout was reached' AND http_status IS NULL)}),
		$MAX_ATTEMPTS, 'slow: every attempt recorded as a timeout');
	my ($dmin, $dmax) = split /\|/, attempts_of($b, $sink, q{round(min(duration_ms)) || '|' || round(max(duration_ms))});
	ok($dmin >= $TIMEOUT_MS - 20 && $dmax <= $TIMEOUT_MS + 300,
		"slow: attempts cut at request_timeout ($dmin .. $dmax ms), not at the server's 5 s");
	like(dcol($b, $sink, 'last_error'), qr/Timeout was reached/, 'slow: last_error says timeout');

	sql(q{ALTER SYSTEM SET chainstore.request_timeout = '8s'; SELECT pg_reload_conf();});
	usleep(1_000_000);
	sql(qq{SELECT chainstore.retry($b, '$sink')});
	ok(wait_for_sql($node, qq{SELECT d.state IN ('delivered', 'verified') FROM chainstore.deliveries d
	                           JOIN chainstore.sinks s USING (sink_id) WHERE d.batch_id = $b AND s.name = '$sink'}, 't', 30),
		'slow: with request_timeout 8 s (reloaded) the retried delivery goes through');
	is(dcol($b, $sink, q{attestation->>'ipfs_cid' = payload_id}), 't', 'slow: attested with chainstore\'s CID');
	my $okdur = attempts_of($b, $sink, q{round(max(duration_ms) FILTER (WHERE ok))});
	cmp_ok($okdur, '>=', 4900, "slow: the successful submit took the server's 5 s ($okdur ms)");

	# the node then starts lying (POST /__mode?m=wrong-cid): the delayed
	# verification reads other bytes back and records a mismatch
	ok(wait_state($b, $sink, 'verified', 30), 'slow: the immediate verification passed (content read back after 5 s)');
	hostile_mode($hs{$sink}, 'wrong-cid');
	ok(wait_state($b, $sink, 'mismatch', 20), 'slow->wrong-cid: the delayed verification finds a mismatch');
	my $cid = dcol($b, $sink, 'payload_id');
	like(dcol($b, $sink, 'last_error'), qr/^content read back from \Q$url\E hashes to \S+, not \Q$cid\E$/,
		'slow->wrong-cid: last_error says what the content hashed to');
	is(sql(qq{SELECT string_agg(phase || ':' || ok, ',' ORDER BY verification_id) FROM chainstore.verifications v
	          JOIN chainstore.sinks s USING (sink_id) WHERE v.batch_id = $b AND s.name = '$sink'}),
		'immediate:true,delayed:false', 'slow->wrong-cid: one good immediate and one failed delayed verification');
	like(slurp_file($node->logfile), qr/WARNING:\s+chainstore: batch $b does not verify on sink slow/,
		'slow->wrong-cid: the mismatch is logged as a WARNING');
	hostile_mode($hs{$sink}, 'slow');
	sql(q{ALTER SYSTEM RESET chainstore.request_timeout; SELECT pg_reload_conf();});
	set_enabled($sink, 'false');
	usleep(1_000_000);
	same_worker('after slow');
}

###########################################################################
# chainstore.retry() of a dead letter, repointed to a real IPFS node
###########################################################################
{
	my $sink = 'garbage-json';
	my $b = $b_garbage;
	my $cid = dcol($b, $sink, 'payload_id');
	my ($ret, $out, $err) = $node->psql('postgres', qq{SELECT chainstore.retry($b, 'good')});
	ok($ret != 0 && $err =~ /no dead-lettered or mismatched delivery of batch $b to sink good/,
		'retry: refused for a delivery that is not dead');
	sql(qq{SELECT chainstore.alter_sink('$sink', endpoints => ARRAY['$ipfs2->{url}'], enabled => true)});
	sql(qq{SELECT chainstore.retry($b, '$sink')});
	ok(wait_state($b, $sink, 'verified', 30), 'retry: the dead letter is delivered to the real node and verified');
	is(dcol($b, $sink, q{payload_id || '|' || (attestation->>'ipfs_cid') || '|' || endpoint || '|' || (last_error IS NULL)}),
		"$cid|$cid|$ipfs2->{url}|true", 'retry: same payload CID, attested by the new endpoint, error cleared');
	is(sql(qq{SELECT count(*) || '|' || bool_and(ok) FROM chainstore.verifications v JOIN chainstore.sinks s USING (sink_id)
	        WHERE v.batch_id = $b AND s.name = '$sink' AND phase = 'immediate'}), '1|true',
		'retry: the immediate verification read it back from the node');
	my $r = HTTP::Tiny->new(timeout => 10)->request('POST', "$ipfs2->{url}/api/v0/cat?arg=$cid");
	is($r->{content}, sql(qq{SELECT chainstore.batch_manifest($b)::text}), 'retry: the node holds the batch manifest');
	is(hostile_stats($hs{$sink})->{total}, 1, 'retry: nothing more went to the hostile server');
	set_enabled($sink, 'false');
	same_worker('after retry');
}

###########################################################################
# manual override: chainstore.circuit(endpoint, 'open') sends nothing there;
# 'auto' lets requests through again
###########################################################################
{
	my $sink = 'wrong-cid';
	my $url = $hs{$sink}{url};
	sql(qq{SELECT chainstore.circuit('$url', 'open')});
	is(circuit_of($url, q{state || '|' || mode}), 'open|open', 'override: circuit_states shows it forced open');
	hostile_reset($hs{$sink});
	set_enabled($sink, 'true');
	my $b = seal_batches(1, 'override');
	usleep(3_000_000);
	is(hostile_stats($hs{$sink})->{total}, 0, 'override: no request reached the endpoint in 3 s while forced open');
	is(attempts_of($b, $sink, 'count(*)'), '0', 'override: no attempt recorded');
	is(dcol($b, $sink, q{state || '|' || attempts}), 'in_flight|0', 'override: the delivery waits, spending no attempts');
	sql(qq{SELECT chainstore.circuit('$url', 'auto')});
	ok(wait_state($b, $sink, 'dead', 15), 'override: after auto the request goes out (and the wrong CID is refused)');
	is(hostile_stats($hs{$sink})->{paths}{'/api/v0/add'} // 0, 1, 'override: exactly one add after auto');
	is(circuit_of($url, 'mode'), 'auto', 'override: mode auto');
	set_enabled($sink, 'false');
	same_worker('after override');
}

###########################################################################
# the healthy sink lost nothing through all of it
###########################################################################
ok(wait_for_sql($node, q{SELECT count(*) FROM chainstore.deliveries d JOIN chainstore.sinks s USING (sink_id)
                         WHERE s.name = 'good' AND d.state <> 'verified'}, '0', 30),
	'the healthy sink verified every batch');
is(sql(q{SELECT count(*) FROM chainstore.deliveries d JOIN chainstore.sinks s USING (sink_id) WHERE s.name = 'good'}),
	sql(q{SELECT count(*) FROM chainstore.batches}), 'the healthy sink has a delivery for every batch');

###########################################################################
# shutdown while a request hangs (request_timeout 60 s): prompt
###########################################################################
{
	my $sink = 'hang';
	my $url = $hs{$sink}{url};
	sql(q{ALTER SYSTEM SET chainstore.request_timeout = '60s'; SELECT pg_reload_conf();});
	usleep(1_000_000);
	sql(qq{SELECT chainstore.circuit('$url', 'auto')});
	hostile_reset($hs{$sink});
	set_enabled($sink, 'true');
	seal_batches(1, 'shutdown');
	my $deadline = time() + 15;
	my $st = hostile_stats($hs{$sink});
	while ($st->{hung} < 1 && time() < $deadline)
	{
		usleep(100_000);
		$st = hostile_stats($hs{$sink});
	}
	cmp_ok($st->{hung}, '>=', 1, "shutdown: requests hang at the hostile server ($st->{hung})");
	# between its 1 s waits on the network the worker runs short database
	# phases, so look for it on the network for a bounded while
	ok(wait_for_sql($node, q{SELECT query FROM pg_stat_activity WHERE backend_type = 'chainstore worker'},
		'chainstore: delivering', 10), 'shutdown: the worker is waiting on the network');

	# a healthy batch sealed while the other sink's request hangs
	set_enabled($sink, 'false');
	my $g = seal_batches(1, 'during hang');
	ok(wait_for_sql($node, qq{SELECT d.state IN ('delivered', 'verified') FROM chainstore.deliveries d
	                           JOIN chainstore.sinks s USING (sink_id) WHERE d.batch_id = $g AND s.name = 'good'}, 't', 5),
		'shutdown: a healthy batch sealed while another sink\'s request hangs is delivered within 5 s');
	note('healthy delivery state: ' . dcol($g, 'good', q{state || ' attempts=' || attempts}));
	same_worker('before shutdown');

	my $t0 = time();
	$node->stop('fast');
	my $took = time() - $t0;
	cmp_ok($took, '<', 5, sprintf('shutdown: pg_ctl stop -m fast returned in %.2f s while the request hung', $took));
	$deadline = time() + 5;
	$st = hostile_stats($hs{$sink});
	while ($st->{hung} > 0 && time() < $deadline)
	{
		usleep(100_000);
		$st = hostile_stats($hs{$sink});
	}
	is($st->{hung}, 0, 'shutdown: the hung connection was closed');
}

my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|TRAP|PANIC/, 'no crash in the server log');
my @starts = $log =~ /chainstore worker started/g;
is(scalar(@starts), 1, 'the worker started once and never restarted');
like($log, qr/dead-lettered for sink garbage-json\n.*DETAIL:\s+IPFS node answered without a CID/,
	'the log has the dead letter with its reason');

stop_hostile($_) for values %hs;
stop_ipfs($ipfs);
stop_ipfs($ipfs2);
done_testing();
