package io.plb.client.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.gson.Strictness;
import com.google.gson.stream.JsonReader;
import com.google.gson.stream.JsonToken;
import io.plb.client.PlbClientException;
import io.plb.client.admin.PlbAdminClient;
import io.plb.core.keyspace.KeyHash;
import io.plb.core.keyspace.Ring;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.core.map.ServerState;
import io.plb.proto.v1.ClusterStatus;
import io.plb.proto.v1.NodeRole;
import io.plb.server.testing.TestCluster;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * plbctl against a real 3-node cluster: every command, its human output, its documented
 * {@code --json} shape (docs/cli.md) and its exit status and one-line error.
 *
 * <p>Tests share one cluster and may run in any order, so each one works inside a region of the
 * ring that only it touches ({@link #carve}), and uses its own queue-server ids.
 */
class PlbCtlTest {
  private static final Duration T = Duration.ofSeconds(20);
  private static final Pattern HEX = Pattern.compile("0x[0-9a-f]{16}");
  private static final String RING_END = "0x10000000000000000";
  private static final Pattern WRITE_DONE = Pattern.compile("\\(map version (\\d+)\\)$");

  @TempDir static Path dir;
  static TestCluster cluster;
  static PlbAdminClient admin;
  static String endpoints;

  @BeforeAll
  static void start() throws Exception {
    cluster = TestCluster.start(dir);
    cluster.awaitLeader(T);
    endpoints = String.join(",", cluster.endpoints());
    admin = PlbAdminClient.newBuilder().endpoints(cluster.endpoints()).build();
    // Every node knows the leader, and the status of the cluster shows one leader and two followers.
    TestCluster.await(T, "a settled cluster status", () -> {
      try {
        ClusterStatus s = admin.clusterStatus();
        return !s.getLeaderId().isEmpty()
            && s.getMembersList().stream().filter(m -> m.getRole() == NodeRole.LEADER).count() == 1
            && s.getMembersList().stream().filter(m -> m.getRole() == NodeRole.FOLLOWER).count()
                == 2;
      } catch (PlbClientException e) {
        return false;
      }
    });
  }

  @AfterAll
  static void stop() {
    if (admin != null) {
      admin.close();
    }
    if (cluster != null) {
      cluster.close();
    }
  }

  // ------------------------------------------------------------------ helpers

  /** What one plbctl run returned and printed. */
  record Result(int code, String out, String err) {
    List<String> outLines() {
      List<String> lines = new ArrayList<>(Arrays.asList(out.split("\n", -1)));
      if (lines.get(lines.size() - 1).isEmpty()) {
        lines.remove(lines.size() - 1);
      }
      return lines;
    }

    /** The map version a write printed: "... (map version N)". */
    long version() {
      Matcher m = WRITE_DONE.matcher(out.strip());
      assertTrue(m.find(), "a write prints its map version: " + this);
      return Long.parseLong(m.group(1));
    }

    @Override
    public String toString() {
      return "exit " + code + "\n--- stdout\n" + out + "--- stderr\n" + err;
    }
  }

  private static PrintStream utf8(ByteArrayOutputStream b) {
    return new PrintStream(b, true, StandardCharsets.UTF_8);
  }

  private static String text(ByteArrayOutputStream b) {
    return b.toString(StandardCharsets.UTF_8);
  }

  /** Runs plbctl with exactly {@code args} and an environment of {@code env}. */
  static Result raw(Map<String, String> env, String... args) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int code = new PlbCtl(utf8(out), utf8(err), env).run(args);
    return new Result(code, text(out), text(err));
  }

  /** Runs plbctl against the test cluster. */
  static Result ctl(String... args) {
    String[] all = new String[args.length + 2];
    all[0] = "--endpoints";
    all[1] = endpoints;
    System.arraycopy(args, 0, all, 2, args.length);
    return raw(Map.of(), all);
  }

  /** Runs a command that must succeed; returns its result. */
  static Result ok(String... args) {
    Result r = ctl(args);
    assertEquals(0, r.code, () -> "plbctl " + String.join(" ", args) + " should succeed: " + r);
    assertEquals("", r.err, () -> "nothing on stderr: " + r);
    return r;
  }

  /** A write that must succeed; waits until every node applied it and returns its version. */
  static long write(String... args) {
    long v = ok(args).version();
    cluster.awaitAllApplied(v, T);
    return v;
  }

  /** Runs a command that must fail with {@code exit}; returns its only stderr line. */
  static String fails(int exit, String... args) {
    Result r = ctl(args);
    return failed(r, exit, String.join(" ", args));
  }

  static String failed(Result r, int exit, String what) {
    assertEquals(exit, r.code, () -> "plbctl " + what + " should exit " + exit + ": " + r);
    assertTrue(r.err.endsWith("\n"), () -> "stderr ends its line: " + r);
    String line = r.err.substring(0, r.err.length() - 1);
    assertFalse(line.contains("\n"), () -> "exactly one line on stderr: " + r);
    assertTrue(line.startsWith("plbctl: "), () -> "stderr starts with 'plbctl: ': " + r);
    assertEquals("", r.out, () -> "nothing on stdout: " + r);
    return line;
  }

  /** Parses one JSON document strictly (the whole text, nothing after it). */
  static JsonElement json(String text) {
    try {
      JsonReader reader = new JsonReader(new StringReader(text));
      reader.setStrictness(Strictness.STRICT);
      JsonElement e = JsonParser.parseReader(reader);
      assertEquals(JsonToken.END_DOCUMENT, reader.peek(), "one JSON value: " + text);
      return e;
    } catch (IOException | RuntimeException e) {
      throw new AssertionError("not valid JSON: " + text, e);
    }
  }

  /** A command's stdout as one JSON object on one line. */
  static JsonObject jsonOut(Result r) {
    assertTrue(r.out.endsWith("\n") && r.out.indexOf('\n') == r.out.length() - 1,
        () -> "--json prints one line: " + r);
    return json(r.out.strip()).getAsJsonObject();
  }

  static void hasKeys(JsonObject o, String... keys) {
    for (String k : keys) {
      assertTrue(o.has(k), () -> "'" + k + "' in " + o);
    }
  }

  static boolean isNull(JsonObject o, String key) {
    return o.get(key).isJsonNull();
  }

  /** The cells of the table row whose first cell is {@code first}, or null. */
  static List<String> row(String output, String first) {
    for (String line : output.split("\n")) {
      List<String> cells = List.of(line.strip().split("\\s{2,}"));
      if (cells.get(0).equals(first)) {
        return cells;
      }
    }
    return null;
  }

  static List<String> headerCells(String output, String first) {
    List<String> r = row(output, first);
    assertNotNull(r, () -> "a header starting " + first + " in\n" + output);
    return r;
  }

  /** The map once every node applied the latest write, read straight from the leader. */
  static ClusterImage map() {
    int leader = cluster.awaitLeader(T);
    ClusterImage image = cluster.node(leader).image();
    cluster.awaitAllApplied(image.version(), T);
    return image;
  }

  /** Start of the region of the ring that test {@code i} alone uses: [start, start + 2^48). */
  static long region(int i) {
    return (long) (0x10 + i) << 56;
  }

  static long regionEnd(int i) {
    return region(i) + (1L << 48);
  }

  /** Makes [lo, hi) a range of its own (hi != 2^64), so a test can work inside it alone. */
  static void carve(long lo, long hi) {
    ClusterImage m = map();
    if (m.indexOfStart(lo) < 0) {
      cluster.awaitAllApplied(admin.splitAtHash(m.rangeFor(lo).start(), lo), T);
      m = map();
    }
    if (m.indexOfStart(hi) < 0) {
      cluster.awaitAllApplied(admin.splitAtHash(m.rangeFor(hi).start(), hi), T);
      m = map();
    }
    RangeEntry r = m.range(m.indexOfStart(lo));
    assertEquals(hi, r.end(), "region [lo, hi) is one range");
  }

  static String hex(long h) {
    return Ring.hex(h);
  }

  // ------------------------------------------------------------------ status

  @Test
  void statusHuman() {
    Result r = ok("status");
    String[] lines = r.out.split("\n");
    ClusterStatus s = admin.clusterStatus();
    String leader = s.getLeaderId();
    int leaderIndex = Integer.parseInt(leader.substring(1)) - 1;
    assertTrue(lines[0].startsWith("leader " + leader + " at " + cluster.endpoint(leaderIndex)),
        lines[0]);
    assertTrue(lines[0].contains(" · term "), lines[0]);
    assertTrue(lines[0].contains(" · map version "), lines[0]);
    assertTrue(lines[0].matches(".* · \\d+ ranges · \\d+ queue servers"), lines[0]);
    assertEquals(List.of("NODE", "ROLE", "API", "RAFT", "TERM", "APPLIED", "COMMIT", "MAP",
        "SNAPSHOT", "NOTE"), headerCells(r.out, "NODE"));
    int leaders = 0;
    for (int i = 0; i < 3; i++) {
      List<String> row = row(r.out, "n" + (i + 1));
      assertNotNull(row, "a row for n" + (i + 1) + " in\n" + r.out);
      assertTrue(row.get(1).equals("LEADER") || row.get(1).equals("FOLLOWER"), row.toString());
      leaders += row.get(1).equals("LEADER") ? 1 : 0;
      assertEquals(cluster.endpoint(i), row.get(2), "API address of n" + (i + 1));
      assertTrue(row.get(3).startsWith("127.0.0.1:"), row.toString());
      for (int c = 4; c <= 8; c++) {
        assertTrue(row.get(c).matches("\\d+"), "numbers in " + row);
      }
    }
    assertEquals(1, leaders, r.out);
    assertEquals("LEADER", row(r.out, leader).get(1));
  }

  @Test
  void statusJson() {
    write("server", "add", "st-a", "--address", "127.0.0.1:9501");
    Result r = ok("status", "--json");
    JsonObject o = jsonOut(r);
    hasKeys(o, "leader", "leader_address", "term", "map_version", "ranges", "servers", "members");
    String leader = o.get("leader").getAsString();
    assertTrue(Set.of("n1", "n2", "n3").contains(leader), leader);
    assertTrue(o.get("term").getAsLong() >= 1);
    assertTrue(o.get("map_version").getAsLong() >= 1, "the registration above is in the map");
    assertTrue(o.get("servers").getAsInt() >= 1);
    assertTrue(o.get("ranges").getAsInt() >= 1);
    JsonArray members = o.getAsJsonArray("members");
    assertEquals(3, members.size());
    Set<String> ids = new HashSet<>();
    int leaders = 0;
    for (JsonElement e : members) {
      JsonObject m = e.getAsJsonObject();
      hasKeys(m, "id", "role", "api_address", "raft_address", "term", "applied_index",
          "commit_index", "map_version", "snapshot_index", "error");
      ids.add(m.get("id").getAsString());
      String role = m.get("role").getAsString();
      assertTrue(Set.of("LEADER", "FOLLOWER", "CANDIDATE", "UNREACHABLE").contains(role), role);
      if (role.equals("LEADER")) {
        leaders++;
        assertEquals(leader, m.get("id").getAsString());
        assertEquals(o.get("leader_address").getAsString(), m.get("api_address").getAsString());
      }
      assertTrue(isNull(m, "error"), "no error for a running node: " + m);
    }
    assertEquals(Set.of("n1", "n2", "n3"), ids);
    assertEquals(1, leaders);
  }

  // ------------------------------------------------------------------ map

  @Test
  void mapHumanAndJson() {
    int i = 1;
    carve(region(i), regionEnd(i));
    write("server", "add", "map-a", "--address", "127.0.0.1:9511", "--capacity", "2");
    write("assign", hex(region(i)), "map-a");
    ClusterImage image = map();

    Result human = ok("map");
    String first = human.out.split("\n")[0];
    assertTrue(first.matches("map version \\d+ · \\d+ ranges · \\d+ queue servers"), first);
    assertEquals(List.of("START", "END", "SHARE", "OWNER", "EPOCH", "PINNED", "HANDOVER"),
        headerCells(human.out, "START"));
    assertEquals(List.of(hex(region(i)), hex(regionEnd(i)), String.format("%.2f%%",
        100.0 / (1 << 16)), "map-a", "1", "no", "-"), row(human.out, hex(region(i))));
    List<String> after = row(human.out, hex(regionEnd(i)));
    assertNotNull(after, human.out);
    assertEquals(image.rangeCount() + 2, human.outLines().size(), "title, header, one row each");
    List<String> last = row(human.out, hex(image.range(image.rangeCount() - 1).start()));
    assertEquals(RING_END, last.get(1));

    JsonObject o = jsonOut(ok("map", "--json"));
    hasKeys(o, "version", "ranges", "servers");
    assertTrue(o.get("version").getAsLong() >= image.version());
    JsonArray ranges = o.getAsJsonArray("ranges");
    assertEquals(image.rangeCount(), ranges.size());
    String expectedStart = "0x0000000000000000";
    boolean seen = false;
    for (JsonElement e : ranges) {
      JsonObject r = e.getAsJsonObject();
      hasKeys(r, "start", "end", "owner", "epoch", "handover", "pinned");
      String start = r.get("start").getAsString();
      String end = r.get("end").getAsString();
      assertTrue(HEX.matcher(start).matches(), start);
      assertTrue(HEX.matcher(end).matches() || end.equals(RING_END), end);
      assertEquals(expectedStart, start, "ranges are sorted and cover the ring");
      expectedStart = end;
      assertTrue(r.get("epoch").getAsLong() >= 0);
      assertTrue(r.get("handover").isJsonNull(), "no handover in these tests: " + r);
      assertTrue(r.get("pinned").isJsonPrimitive() && r.get("pinned").getAsJsonPrimitive()
          .isBoolean());
      if (start.equals(hex(region(i)))) {
        seen = true;
        assertEquals(hex(regionEnd(i)), end);
        assertEquals("map-a", r.get("owner").getAsString());
        assertEquals(1, r.get("epoch").getAsLong());
        assertFalse(r.get("pinned").getAsBoolean());
      }
      if (start.equals(hex(regionEnd(i)))) {
        assertTrue(r.get("owner").isJsonNull(), "an unassigned range has a null owner: " + r);
      }
    }
    assertTrue(seen, "the carved region is in the map");
    assertEquals(RING_END, expectedStart, "the last range ends at 2^64");
    boolean server = false;
    for (JsonElement e : o.getAsJsonArray("servers")) {
      JsonObject s = e.getAsJsonObject();
      hasKeys(s, "id", "address", "capacity", "state");
      if (s.get("id").getAsString().equals("map-a")) {
        server = true;
        assertEquals("127.0.0.1:9511", s.get("address").getAsString());
        assertEquals(2.0, s.get("capacity").getAsDouble());
        assertEquals("ACTIVE", s.get("state").getAsString());
      }
    }
    assertTrue(server, "map-a in " + o);
  }

  // ------------------------------------------------------------------ servers

  @Test
  void serversHumanAndJson() {
    int i = 2;
    carve(region(i), regionEnd(i));
    write("server", "add", "srv-a", "--address", "127.0.0.1:9521", "--capacity", "2.5");
    write("server", "add", "srv-b", "--address", "127.0.0.1:9522");
    write("assign", hex(region(i)), "srv-a");

    Result human = ok("servers");
    assertTrue(human.out.split("\n")[0].matches("map version \\d+ · \\d+ queue servers"),
        human.out);
    assertEquals(List.of("ID", "ADDRESS", "CAPACITY", "STATE", "RANGES", "LEASE", "FENCED",
        "DUPS"), headerCells(human.out, "ID"));
    // No queue server runs at these addresses: its lease is unknown.
    assertEquals(List.of("srv-a", "127.0.0.1:9521", "2.5", "ACTIVE", "1", "?", "?", "?"),
        row(human.out, "srv-a"));
    assertEquals(List.of("srv-b", "127.0.0.1:9522", "1.0", "ACTIVE", "0", "?", "?", "?"),
        row(human.out, "srv-b"));

    JsonObject o = jsonOut(ok("servers", "--json"));
    hasKeys(o, "version", "servers");
    int found = 0;
    for (JsonElement e : o.getAsJsonArray("servers")) {
      JsonObject s = e.getAsJsonObject();
      hasKeys(s, "id", "address", "capacity", "state", "ranges", "lease_held",
          "lease_remaining_ms", "fenced_total", "duplicates_total", "fenced_producers_total",
          "producer_sequences");
      String id = s.get("id").getAsString();
      if (id.equals("srv-a")) {
        found++;
        assertEquals(2.5, s.get("capacity").getAsDouble());
        assertEquals(1, s.get("ranges").getAsInt());
      } else if (id.equals("srv-b")) {
        found++;
        assertEquals("127.0.0.1:9522", s.get("address").getAsString());
        assertEquals(1, s.get("capacity").getAsDouble());
        assertEquals("ACTIVE", s.get("state").getAsString());
        assertEquals(0, s.get("ranges").getAsInt());
      }
    }
    assertEquals(2, found, o.toString());
  }

  @Test
  void serverAddUpdateRemove() {
    Result add = ok("server", "add", "life-a", "--address", "127.0.0.1:9531", "--capacity", "3");
    long v1 = add.version();
    assertTrue(add.out.matches("server life-a registered \\(map version \\d+\\)\n"), add.out);
    QueueServerInfo s = admin.getMap(v1).server("life-a");
    assertEquals(new QueueServerInfo("life-a", "127.0.0.1:9531", 3.0, ServerState.ACTIVE), s);

    Result up = ok("server", "update", "life-a", "--state", "draining", "--capacity", "4",
        "--address", "127.0.0.1:9532");
    assertTrue(up.out.matches("server life-a updated \\(map version \\d+\\)\n"), up.out);
    long v2 = up.version();
    assertTrue(v2 > v1);
    assertEquals(new QueueServerInfo("life-a", "127.0.0.1:9532", 4.0, ServerState.DRAINING),
        admin.getMap(v2).server("life-a"));

    JsonObject j = jsonOut(ok("--json", "server", "update", "life-a", "--state", "DOWN"));
    assertEquals(Set.of("version"), j.keySet());
    long v3 = j.get("version").getAsLong();
    assertTrue(v3 > v2);
    assertEquals(ServerState.DOWN, admin.getMap(v3).server("life-a").state());
    assertEquals(4.0, admin.getMap(v3).server("life-a").capacity(), "others left as they were");

    cluster.awaitAllApplied(v3, T);
    assertEquals(List.of("life-a", "127.0.0.1:9532", "4.0", "DOWN", "0", "?", "?", "?"),
        row(ok("servers").out, "life-a"));

    Result rm = ok("server", "remove", "life-a");
    assertTrue(rm.out.matches("server life-a removed \\(map version \\d+\\)\n"), rm.out);
    long v4 = rm.version();
    assertNull(admin.getMap(v4).server("life-a"));

    JsonObject added = jsonOut(ok("server", "add", "life-b", "--address", "127.0.0.1:9533",
        "--json"));
    long v5 = added.get("version").getAsLong();
    assertTrue(v5 > v4);
    assertEquals(1.0, admin.getMap(v5).server("life-b").capacity(), "default capacity");
    JsonObject removed = jsonOut(ok("server", "remove", "life-b", "--json"));
    assertNull(admin.getMap(removed.get("version").getAsLong()).server("life-b"));
    cluster.awaitAllApplied(removed.get("version").getAsLong(), T);
    assertNull(row(ok("servers").out, "life-b"));
  }

  // ------------------------------------------------------------------ split and merge

  @Test
  void splitAt() {
    int i = 3;
    long lo = region(i);
    long mid = lo + (1L << 40);
    carve(lo, regionEnd(i));
    Result r = ok("split", hex(lo), "--at", hex(mid));
    assertTrue(r.out.matches("split range " + hex(lo) + " \\(map version \\d+\\)\n"), r.out);
    ClusterImage m = admin.getMap(r.version());
    assertEquals(mid, m.range(m.indexOfStart(lo)).end());
    assertEquals(regionEnd(i), m.range(m.indexOfStart(mid)).end());
    cluster.awaitAllApplied(r.version(), T);
    Result map = ok("map");
    assertEquals(hex(mid), row(map.out, hex(lo)).get(1));
    assertEquals(hex(regionEnd(i)), row(map.out, hex(mid)).get(1));

    // Decimal positions, --at=VALUE, and --json.
    long quarter = lo + (1L << 39);
    JsonObject j = jsonOut(ok("split", Long.toUnsignedString(lo), "--at=" + quarter, "--json"));
    assertEquals(Set.of("version"), j.keySet());
    m = admin.getMap(j.get("version").getAsLong());
    assertEquals(quarter, m.range(m.indexOfStart(lo)).end());
    assertEquals(mid, m.range(m.indexOfStart(quarter)).end());
  }

  @Test
  void splitIntoPieces() {
    int i = 15;
    long lo = region(i);
    carve(lo, regionEnd(i));
    Result r = ok("split", hex(lo), "--pieces", "4");
    assertTrue(r.out.matches("split range " + hex(lo) + " \\(map version \\d+\\)\n"), r.out);
    ClusterImage m = admin.getMap(r.version());
    for (int k = 0; k < 4; k++) {
      RangeEntry piece = m.range(m.indexOfStart(lo + k * (1L << 46)));
      assertEquals(k == 3 ? regionEnd(i) : lo + (k + 1) * (1L << 46), piece.end());
    }
    String line = fails(1, "split", hex(lo), "--pieces", "1");
    assertTrue(line.startsWith("plbctl: INVALID_ARGUMENT: ") && line.contains("at least 2"), line);
    line = fails(1, "split", hex(lo), "--pieces", "5000");
    assertTrue(line.startsWith("plbctl: RESOURCE_EXHAUSTED: ")
        && line.contains("map.maxSplitPieces"), line);
    line = fails(2, "split", hex(lo), "--pieces", "four");
    assertTrue(line.contains("not a whole number"), line);
    line = fails(2, "split", hex(lo), "--pieces", "2", "--at", hex(lo + 5));
    assertTrue(line.contains("exactly one of"), line);
    assertEquals(r.version(), map().version(), "refused splits change nothing");
  }

  @Test
  void splitAtKey() {
    String key = "plbctl-split-key";
    long h = KeyHash.hash(key);
    long lo = h & 0xFFFF_FF00_0000_0000L;
    long hi = lo + (1L << 40);
    assertTrue(h != lo && hi != 0 && (lo >>> 56 < 0x10 || lo >>> 56 > 0x1f),
        "the key's region is not another test's; pick another key");
    carve(lo, hi);
    Result r = ok("split", hex(lo), "--key", key);
    assertTrue(r.out.matches("split range " + hex(lo) + " \\(map version \\d+\\)\n"), r.out);
    ClusterImage m = admin.getMap(r.version());
    assertTrue(m.indexOfStart(h) >= 0, "a range starts at the key's hash " + hex(h));
    assertEquals(h, m.range(m.indexOfStart(lo)).end());
    assertEquals(hi, m.range(m.indexOfStart(h)).end());

    // The key's hash is now a range start: splitting there again is refused.
    String line = fails(1, "split", hex(lo), "--key", key);
    assertTrue(line.startsWith("plbctl: INVALID_ARGUMENT: ") && line.contains("outside it"), line);
    line = fails(1, "split", hex(h), "--key", key);
    assertTrue(line.startsWith("plbctl: INVALID_ARGUMENT: "), line);
    assertTrue(line.contains("at its start"), line);
  }

  @Test
  void mergeWithAndWithoutNext() {
    int i = 4;
    long lo = region(i);
    long mid = lo + (1L << 40);
    carve(lo, regionEnd(i));
    write("split", hex(lo), "--at", hex(mid));

    Result r = ok("merge", hex(lo), hex(mid));
    assertTrue(r.out.matches("merged ranges at " + hex(lo) + " and " + hex(mid)
        + " \\(map version \\d+\\)\n"), r.out);
    ClusterImage m = admin.getMap(r.version());
    assertTrue(m.indexOfStart(mid) < 0, "the right range is gone");
    assertEquals(regionEnd(i), m.range(m.indexOfStart(lo)).end());

    write("split", hex(lo), "--at", hex(mid));
    Result r2 = ok("merge", hex(lo)); // NEXT is looked up in the map
    assertTrue(r2.out.matches("merged ranges at " + hex(lo) + " and " + hex(mid)
        + " \\(map version \\d+\\)\n"), r2.out);
    m = admin.getMap(r2.version());
    assertTrue(m.indexOfStart(mid) < 0);
    assertEquals(regionEnd(i), m.range(m.indexOfStart(lo)).end());

    write("split", hex(lo), "--at", hex(mid));
    JsonObject j = jsonOut(ok("merge", hex(lo), "--json"));
    assertEquals(Set.of("version"), j.keySet());
    m = admin.getMap(j.get("version").getAsLong());
    assertEquals(regionEnd(i), m.range(m.indexOfStart(lo)).end());
  }

  @Test
  void mergeOfDifferentlyOwnedRangesIsRefused() {
    int i = 5;
    long lo = region(i);
    long mid = lo + (1L << 40);
    carve(lo, regionEnd(i));
    write("server", "add", "mrg-a", "--address", "127.0.0.1:9551");
    write("server", "add", "mrg-b", "--address", "127.0.0.1:9552");
    write("split", hex(lo), "--at", hex(mid));
    write("assign", hex(lo), "mrg-a");
    long v = write("assign", hex(mid), "mrg-b");

    String line = fails(1, "merge", hex(lo));
    assertTrue(line.startsWith("plbctl: FAILED_PRECONDITION: "), line);
    assertTrue(line.contains("different owners") && line.contains("mrg-a")
        && line.contains("mrg-b"), line);
    line = fails(1, "merge", hex(lo), hex(mid), "--json");
    assertTrue(line.startsWith("plbctl: FAILED_PRECONDITION: "), line);
    assertEquals(v, map().version(), "a refused merge changes nothing");

    // Not adjacent, and the last range of the ring with nothing after it.
    line = fails(1, "merge", hex(lo), hex(regionEnd(i)));
    assertTrue(line.startsWith("plbctl: INVALID_ARGUMENT: ") && line.contains("not adjacent"),
        line);
    ClusterImage m = map();
    String lastStart = hex(m.range(m.rangeCount() - 1).start());
    line = fails(1, "merge", lastStart);
    assertTrue(line.startsWith("plbctl: INVALID_ARGUMENT: ") && line.contains("the last one"),
        line);
    line = fails(1, "merge", hex(lo + 1));
    assertTrue(line.startsWith("plbctl: NOT_FOUND: ") && line.contains("no range starts at"),
        line);
  }

  @Test
  void splitAtARangeStartIsRefused() {
    int i = 6;
    carve(region(i), regionEnd(i));
    long before = map().version();
    String line = fails(1, "split", hex(region(i)), "--at", hex(region(i)));
    assertTrue(line.startsWith("plbctl: INVALID_ARGUMENT: "), line);
    assertTrue(line.contains("at its start"), line);
    // Outside the range, and a RANGE that is not a range start.
    line = fails(1, "split", hex(region(i)), "--at", hex(regionEnd(i) + 5));
    assertTrue(line.startsWith("plbctl: INVALID_ARGUMENT: ") && line.contains("outside it"),
        line);
    line = fails(1, "split", hex(region(i) + 7), "--at", hex(region(i) + 9));
    assertTrue(line.startsWith("plbctl: NOT_FOUND: "), line);
    assertEquals(before, map().version(), "refused splits change nothing");
  }

  // ------------------------------------------------------------------ assign, pin

  @Test
  void assignAndForce() {
    int i = 7;
    long lo = region(i);
    carve(lo, regionEnd(i));
    write("server", "add", "asg-a", "--address", "127.0.0.1:9571");
    write("server", "add", "asg-b", "--address", "127.0.0.1:9572");

    Result r = ok("assign", hex(lo), "asg-a");
    assertTrue(r.out.matches("range " + hex(lo) + " assigned to asg-a \\(map version \\d+\\)\n"),
        r.out);
    RangeEntry e = admin.getMap(r.version()).rangeFor(lo);
    assertEquals("asg-a", e.owner());
    assertEquals(1, e.epoch());

    String line = fails(1, "assign", hex(lo), "asg-b");
    assertTrue(line.startsWith("plbctl: FAILED_PRECONDITION: ") && line.contains("handover"),
        line);
    line = fails(1, "assign", hex(lo), "asg-a", "--force");
    assertTrue(line.startsWith("plbctl: FAILED_PRECONDITION: ")
        && line.contains("already owned by asg-a"), line);

    Result forced = ok("assign", hex(lo), "asg-b", "--force");
    assertTrue(forced.out.matches(
        "range " + hex(lo) + " assigned to asg-b \\(map version \\d+\\)\n"), forced.out);
    e = admin.getMap(forced.version()).rangeFor(lo);
    assertEquals("asg-b", e.owner());
    assertEquals(2, e.epoch(), "every ownership change bumps the epoch");

    JsonObject j = jsonOut(ok("--force", "--json", "assign", hex(lo), "asg-a"));
    long v = j.get("version").getAsLong();
    assertEquals(Set.of("version"), j.keySet());
    assertEquals("asg-a", admin.getMap(v).rangeFor(lo).owner());
    assertEquals(3, admin.getMap(v).rangeFor(lo).epoch());
    cluster.awaitAllApplied(v, T);
    List<String> row = row(ok("map").out, hex(lo));
    assertEquals("asg-a", row.get(3));
    assertEquals("3", row.get(4));
  }

  @Test
  void pinAndUnpin() {
    int i = 8;
    long lo = region(i);
    carve(lo, regionEnd(i));
    Result pin = ok("pin", hex(lo));
    assertTrue(pin.out.matches("range " + hex(lo) + " pinned \\(map version \\d+\\)\n"), pin.out);
    assertTrue(admin.getMap(pin.version()).rangeFor(lo).pinned());
    cluster.awaitAllApplied(pin.version(), T);
    assertEquals("yes", row(ok("map").out, hex(lo)).get(5));
    JsonObject range = null;
    for (JsonElement e : jsonOut(ok("map", "--json")).getAsJsonArray("ranges")) {
      if (e.getAsJsonObject().get("start").getAsString().equals(hex(lo))) {
        range = e.getAsJsonObject();
      }
    }
    assertNotNull(range);
    assertTrue(range.get("pinned").getAsBoolean());

    String line = fails(1, "pin", hex(lo));
    assertTrue(line.startsWith("plbctl: FAILED_PRECONDITION: ") && line.contains("already pinned"),
        line);

    Result unpin = ok("unpin", hex(lo));
    assertTrue(unpin.out.matches("range " + hex(lo) + " unpinned \\(map version \\d+\\)\n"),
        unpin.out);
    assertFalse(admin.getMap(unpin.version()).rangeFor(lo).pinned());
    cluster.awaitAllApplied(unpin.version(), T);
    assertEquals("no", row(ok("map").out, hex(lo)).get(5));

    JsonObject j = jsonOut(ok("pin", hex(lo), "--json"));
    assertTrue(admin.getMap(j.get("version").getAsLong()).rangeFor(lo).pinned());
    j = jsonOut(ok("unpin", Long.toUnsignedString(lo), "--json"));
    assertFalse(admin.getMap(j.get("version").getAsLong()).rangeFor(lo).pinned());
  }

  // ------------------------------------------------------------------ watch

  /** Runs plbctl on its own thread, so a test can write while it watches. */
  static final class Background implements AutoCloseable {
    final ByteArrayOutputStream out = new ByteArrayOutputStream();
    final ByteArrayOutputStream err = new ByteArrayOutputStream();
    final AtomicInteger code = new AtomicInteger(-1);
    final Thread thread;

    Background(String... args) {
      String[] all = new String[args.length + 2];
      all[0] = "--endpoints";
      all[1] = endpoints;
      System.arraycopy(args, 0, all, 2, args.length);
      PlbCtl ctl = new PlbCtl(utf8(out), utf8(err), Map.of());
      thread = new Thread(() -> code.set(ctl.run(all)), "plbctl " + String.join(" ", args));
      thread.setDaemon(true);
      thread.start();
    }

    String out() {
      return text(out);
    }

    /** Waits for the command to end; returns its result. */
    Result join(Duration timeout) throws InterruptedException {
      thread.join(timeout.toMillis());
      if (thread.isAlive()) {
        fail("plbctl did not finish within " + timeout.toMillis() + " ms; printed:\n" + out()
            + "--- stderr\n" + text(err));
      }
      return new Result(code.get(), out(), text(err));
    }

    @Override
    public void close() throws InterruptedException {
      if (thread.isAlive()) {
        thread.interrupt(); // watch ends (and closes its watcher) when interrupted
        thread.join(10_000);
      }
    }
  }

  /** Every node has applied everything the leader has, so a new watcher starts up to date. */
  static long settle() {
    return map().version();
  }

  @Test
  void watchPrintsTheFullMapThenEachChange() throws Exception {
    ClusterImage image = map();
    long v0 = image.version();
    try (Background watch = new Background("watch", "--count", "2")) {
      TestCluster.await(T, "the full map line", () -> watch.out().contains("full map"));
      long v = write("server", "add", "wch-a", "--address", "127.0.0.1:9591");
      Result r = watch.join(T);
      assertEquals(0, r.code, r.toString());
      assertEquals("", r.err);
      List<String> lines = r.outLines();
      assertEquals(3, lines.size(), "full map, then a delta with one server line: " + r);
      assertTrue(lines.get(0).matches("v" + v0 + "  full map: \\d+ ranges, \\d+ queue servers"),
          lines.get(0));
      assertTrue(lines.get(0).contains(" " + image.rangeCount() + " ranges, "
          + image.servers().size() + " queue servers"), lines.get(0));
      assertEquals("v" + v + "  register server wch-a at 127.0.0.1:9591", lines.get(1));
      assertEquals("      server wch-a 127.0.0.1:9591 ACTIVE capacity 1.0", lines.get(2));
    }
  }

  @Test
  void watchJson() throws Exception {
    ClusterImage image = map();
    long v0 = image.version();
    try (Background watch = new Background("watch", "--json", "--count", "2")) {
      TestCluster.await(T, "the full map line", () -> watch.out().contains("\"full_map\""));
      long v = write("server", "add", "wch-j", "--address", "127.0.0.1:9592", "--capacity", "2");
      Result r = watch.join(T);
      assertEquals(0, r.code, r.toString());
      List<String> lines = r.outLines();
      assertEquals(2, lines.size(), r.toString());

      JsonObject full = json(lines.get(0)).getAsJsonObject();
      hasKeys(full, "version", "type", "ranges", "servers");
      assertEquals("full_map", full.get("type").getAsString());
      assertEquals(v0, full.get("version").getAsLong());
      JsonArray ranges = full.getAsJsonArray("ranges");
      assertEquals(image.rangeCount(), ranges.size());
      assertEquals(image.servers().size(), full.getAsJsonArray("servers").size());
      JsonObject lastRange = ranges.get(ranges.size() - 1).getAsJsonObject();
      hasKeys(lastRange, "start", "end", "owner", "epoch", "handover", "pinned");
      assertEquals(RING_END, lastRange.get("end").getAsString());

      JsonObject delta = json(lines.get(1)).getAsJsonObject();
      hasKeys(delta, "version", "type", "prev_version", "cause", "removed_range_starts",
          "upserted_ranges", "removed_servers", "upserted_servers");
      assertEquals("delta", delta.get("type").getAsString());
      assertEquals(v, delta.get("version").getAsLong());
      assertEquals(v0, delta.get("prev_version").getAsLong(), "each delta follows the last line");
      assertEquals("register server wch-j at 127.0.0.1:9592", delta.get("cause").getAsString());
      assertEquals(0, delta.getAsJsonArray("removed_range_starts").size());
      assertEquals(0, delta.getAsJsonArray("upserted_ranges").size());
      assertEquals(0, delta.getAsJsonArray("removed_servers").size());
      JsonArray servers = delta.getAsJsonArray("upserted_servers");
      assertEquals(1, servers.size());
      JsonObject s = servers.get(0).getAsJsonObject();
      assertEquals("wch-j", s.get("id").getAsString());
      assertEquals("127.0.0.1:9592", s.get("address").getAsString());
      assertEquals(2.0, s.get("capacity").getAsDouble());
      assertEquals("ACTIVE", s.get("state").getAsString());
    }
  }

  @Test
  void watchJsonDeltaOfASplit() throws Exception {
    int i = 9;
    long lo = region(i);
    long mid = lo + (1L << 40);
    carve(lo, regionEnd(i));
    long v0 = settle();
    try (Background watch = new Background("watch", "--json", "--count", "2")) {
      TestCluster.await(T, "the full map line", () -> watch.out().contains("\"full_map\""));
      long v = write("split", hex(lo), "--at", hex(mid));
      Result r = watch.join(T);
      assertEquals(0, r.code, r.toString());
      List<String> lines = r.outLines();
      assertEquals(2, lines.size(), r.toString());
      assertEquals(v0, json(lines.get(0)).getAsJsonObject().get("version").getAsLong());
      JsonObject delta = json(lines.get(1)).getAsJsonObject();
      assertEquals(v, delta.get("version").getAsLong());
      assertEquals(v0, delta.get("prev_version").getAsLong());
      assertEquals("split range at " + hex(mid), delta.get("cause").getAsString());
      JsonArray removed = delta.getAsJsonArray("removed_range_starts");
      assertEquals(1, removed.size());
      assertEquals(hex(lo), removed.get(0).getAsString());
      JsonArray up = delta.getAsJsonArray("upserted_ranges");
      assertEquals(2, up.size());
      Set<String> bounds = new HashSet<>();
      for (JsonElement e : up) {
        JsonObject o = e.getAsJsonObject();
        bounds.add(o.get("start").getAsString() + "-" + o.get("end").getAsString());
        assertTrue(o.get("owner").isJsonNull());
      }
      assertEquals(Set.of(hex(lo) + "-" + hex(mid), hex(mid) + "-" + hex(regionEnd(i))), bounds);
    }
  }

  @Test
  void watchFromSkipsAnOldFullMap() throws Exception {
    long v0 = settle();
    try (Background watch = new Background("watch", "--from", Long.toString(v0), "--count", "1")) {
      // Nothing to wait on: the full map at v0 is not printed. Whether the write lands before or
      // after the watcher subscribes, the one line printed is at the write's version.
      long v = write("server", "add", "wch-f", "--address", "127.0.0.1:9593");
      Result r = watch.join(T);
      assertEquals(0, r.code, r.toString());
      List<String> lines = r.outLines();
      assertFalse(lines.isEmpty(), r.toString());
      assertTrue(lines.get(0).startsWith("v" + v + "  "), "no line for v" + v0 + ": " + r);
    }
  }

  // ------------------------------------------------------------------ refusals (exit 1)

  @Test
  void unknownServer() {
    int i = 10;
    carve(region(i), regionEnd(i));
    String line = fails(1, "server", "remove", "nobody-here");
    assertTrue(line.startsWith("plbctl: NOT_FOUND: ") && line.contains("nobody-here"), line);
    line = fails(1, "server", "update", "nobody-here", "--capacity", "2");
    assertTrue(line.startsWith("plbctl: NOT_FOUND: ") && line.contains("nobody-here"), line);
    line = fails(1, "assign", hex(region(i)), "nobody-here");
    assertTrue(line.startsWith("plbctl: NOT_FOUND: ") && line.contains("nobody-here"), line);
    line = fails(1, "--json", "server", "remove", "nobody-here");
    assertTrue(line.startsWith("plbctl: NOT_FOUND: "), line);
  }

  @Test
  void otherRefusals() {
    write("server", "add", "ref-a", "--address", "127.0.0.1:9600");
    String line = fails(1, "server", "add", "ref-a", "--address", "127.0.0.1:9600");
    assertTrue(line.startsWith("plbctl: FAILED_PRECONDITION: ")
        && line.contains("already registered"), line);
    line = fails(1, "server", "add", "ref-b", "--address", "no-port");
    assertTrue(line.startsWith("plbctl: INVALID_ARGUMENT: "), line);
    line = fails(1, "server", "add", "ref-c", "--address", "127.0.0.1:9601", "--capacity", "-1");
    assertTrue(line.startsWith("plbctl: INVALID_ARGUMENT: "), line);
    line = fails(1, "server", "update", "ref-a");
    assertTrue(line.startsWith("plbctl: INVALID_ARGUMENT: ") && line.contains("changes nothing"),
        line);
  }

  // ------------------------------------------------------------------ usage errors (exit 2)

  @Test
  void usageErrors() {
    String line = fails(2, "frobnicate");
    assertEquals("plbctl: unknown command 'frobnicate' (see plbctl --help)", line);
    line = fails(2, "status", "--bogus");
    assertEquals("plbctl: unknown option --bogus (see plbctl --help)", line);
    line = fails(2, "server", "add", "use-a");
    assertEquals("plbctl: server add needs --address HOST:PORT", line);
    line = fails(2, "server", "update", "use-a", "--state", "SLEEPING");
    assertEquals("plbctl: --state must be one of [ACTIVE, DRAINING, DOWN]", line);
    line = fails(2, "split", "zzz", "--at", "0x10");
    assertTrue(line.startsWith("plbctl: 'zzz' is not a hash position"), line);
    line = fails(2, "split", "0", "--at", "0xZZ");
    assertTrue(line.startsWith("plbctl: '0xZZ' is not a hash position"), line);
    line = fails(2, "pin", "12abc");
    assertTrue(line.startsWith("plbctl: '12abc' is not a hash position"), line);
    line = fails(2, "merge", "0", "next");
    assertTrue(line.startsWith("plbctl: 'next' is not a hash position"), line);
    line = fails(2, "split", "0", "--at", "0x10000000000000000");
    assertTrue(line.contains("outside the ring"), line);
    line = fails(2, "split", "0");
    assertEquals("plbctl: split needs exactly one of --at HASH, --key KEY or --pieces N", line);
    line = fails(2, "split", "0", "--at", "5", "--key", "k");
    assertEquals("plbctl: split needs exactly one of --at HASH, --key KEY or --pieces N", line);
    line = fails(2, "server", "add", "use-a", "--address", "127.0.0.1:1", "--capacity", "lots");
    assertEquals("plbctl: --capacity 'lots' is not a number", line);
    line = fails(2, "server", "launch", "use-a");
    assertEquals("plbctl: unknown server command 'launch' (add, update, remove, drain)", line);
    line = fails(2, "server", "add");
    assertTrue(line.startsWith("plbctl: usage: plbctl server"), line);
    line = fails(2, "status", "extra");
    assertEquals("plbctl: usage: plbctl status", line);
    line = fails(2, "assign", "0");
    assertEquals("plbctl: usage: plbctl assign RANGE SERVER [--force]", line);
    line = fails(2, "merge");
    assertEquals("plbctl: usage: plbctl merge RANGE [NEXT]", line);
    line = fails(2, "map", "--json=yes");
    assertEquals("plbctl: --json takes no value", line);
    line = fails(2, "split", "0", "--at");
    assertEquals("plbctl: --at needs a value", line);
  }

  @Test
  void nonNumericOptionValuesNameTheOption() {
    assertTrue(fails(2, "--timeout", "abc", "status").contains("--timeout"));
    assertTrue(fails(2, "watch", "--count", "abc").contains("--count"));
    assertTrue(fails(2, "watch", "--from", "abc").contains("--from"));
  }

  @Test
  void helpAndNoCommand() {
    Result none = raw(Map.of());
    assertEquals(2, none.code);
    assertEquals("", none.out);
    assertEquals(1, none.err.lines().count(), none.err);
    assertTrue(none.err.startsWith("plbctl: no command given"), none.err);
    Result help = raw(Map.of(), "--help");
    assertEquals(0, help.code);
    assertEquals(PlbCtl.USAGE, help.out);
    assertEquals("", help.err);
    assertEquals(0, raw(Map.of(), "-h").code);
  }

  @Test
  void endpointsFromTheEnvironment() {
    Result r = raw(Map.of("PLB_ENDPOINTS", endpoints), "status", "--json");
    assertEquals(0, r.code, r.toString());
    assertEquals(3, jsonOut(r).getAsJsonArray("members").size());
  }

  @Test
  void unreachableEndpoint() throws IOException {
    String nobody = "127.0.0.1:" + TestCluster.freePort();
    long t0 = System.nanoTime();
    Result r = raw(Map.of(), "--endpoints", nobody, "--timeout", "2", "status");
    String line = failed(r, 1, "status against " + nobody);
    assertTrue(line.startsWith("plbctl: UNAVAILABLE: "), line);
    Result w = raw(Map.of(), "--endpoints", nobody, "--timeout", "2", "server", "add", "unr-a",
        "--address", "127.0.0.1:9700");
    line = failed(w, 1, "server add against " + nobody);
    assertTrue(line.startsWith("plbctl: UNAVAILABLE: "), line);
    long millis = (System.nanoTime() - t0) / 1_000_000;
    assertTrue(millis < 12_000, "two calls with --timeout 2 took " + millis + " ms");
  }

  @Test
  void followersServeReadsAndForwardWrites() {
    // Each node alone as the only endpoint: status works everywhere, and a write sent to a
    // follower reaches the leader.
    for (int n = 0; n < 3; n++) {
      Result r = raw(Map.of(), "--endpoints", cluster.endpoint(n), "status", "--json");
      assertEquals(0, r.code, r.toString());
      assertEquals(3, jsonOut(r).getAsJsonArray("members").size());
    }
    int leader = cluster.awaitLeader(T);
    int follower = (leader + 1) % 3;
    Result w = raw(Map.of(), "--endpoints", cluster.endpoint(follower), "server", "add",
        "fwd-a", "--address", "127.0.0.1:9710");
    assertEquals(0, w.code, w.toString());
    assertNotNull(admin.getMap(w.version()).server("fwd-a"));
  }

  /** The regions tests use do not overlap. */
  @Test
  void regionsAreDisjoint() {
    List<long[]> regions = new ArrayList<>();
    for (int i = 1; i <= 10; i++) {
      regions.add(new long[] {region(i), regionEnd(i)});
    }
    for (int a = 0; a < regions.size(); a++) {
      for (int b = a + 1; b < regions.size(); b++) {
        assertTrue(Long.compareUnsigned(regions.get(a)[1], regions.get(b)[0]) <= 0);
      }
    }
  }

  @Test
  void moveHandoversAndAbort() {
    int i = 20;
    long lo = region(i);
    carve(lo, regionEnd(i));
    write("server", "add", "mv-a", "--address", "127.0.0.1:9581");
    write("server", "add", "mv-b", "--address", "127.0.0.1:9582");
    write("assign", hex(lo), "mv-a");
    long epoch = map().rangeFor(lo).epoch();

    JsonObject started = jsonOut(ok("--json", "move", hex(lo), "--to", "mv-b", "--no-wait"));
    assertEquals(epoch + 1, started.get("handover_epoch").getAsLong());
    assertEquals("PREPARE", started.get("phase").getAsString());

    Result human = ok("handovers");
    List<String> cells = row(human.out, Ring.formatRange(lo, regionEnd(i)));
    assertNotNull(cells, human.out);
    assertEquals(List.of("mv-a", "mv-b", "PREPARE"), cells.subList(1, 4));

    JsonObject list = jsonOut(ok("--json", "handovers"));
    JsonObject h = null;
    for (var e : list.getAsJsonArray("handovers")) {
      if (e.getAsJsonObject().get("start").getAsString().equals(hex(lo))) {
        h = e.getAsJsonObject();
      }
    }
    assertNotNull(h, list.toString());
    assertEquals("mv-a", h.get("source").getAsString());
    assertEquals("mv-b", h.getAsJsonObject("handover").get("target").getAsString());
    assertEquals(epoch + 1, h.get("handover_epoch").getAsLong());

    String busy = fails(1, "move", hex(lo), "--to", "mv-a");
    assertTrue(busy.startsWith("plbctl: FAILED_PRECONDITION: "), busy);
    Result aborted = ok("abort", hex(lo), "--reason", "test");
    assertTrue(aborted.out.startsWith("handover of range " + hex(lo) + " aborted"), aborted.out);
    RangeEntry after = admin.getMap(aborted.version()).rangeFor(lo);
    assertEquals("mv-a", after.owner());
    assertEquals(epoch + 1, after.epoch(), "clearing an aborted handover bumps the epoch");
    assertTrue(fails(1, "abort", hex(lo)).startsWith("plbctl: FAILED_PRECONDITION: "));
    assertTrue(fails(2, "move", hex(lo)).contains("--to"));
  }
}
