package io.plb.server.simulate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.keyspace.KeyHash;
import io.plb.core.sim.balance.Trace;
import io.plb.core.sim.balance.TraceFormatException;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Instant;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TraceFilesTest {
  @TempDir Path dir;

  private static final String CSV = """
      ts,key,size
      2001-01-01T05:01Z,ATL,1116
      2001-01-01T05:01:30,ORD-LAX,300
      978325320000,ATL,10
      """;

  private Path gzip(String name, String text) throws IOException {
    Path p = dir.resolve(name);
    try (OutputStream out = new GZIPOutputStream(Files.newOutputStream(p))) {
      out.write(text.getBytes(StandardCharsets.UTF_8));
    }
    return p;
  }

  @Test
  void readsPlainAndGzipAlike() throws IOException {
    Path plain = Files.writeString(dir.resolve("t.csv"), CSV);
    // Gzip is recognised by content, not by the file name.
    Path packed = gzip("g.csv", CSV.replace("\n", "\r\n"));
    Path zipped = gzip("u.data", CSV);
    Trace a = TraceFiles.read(plain);
    Trace b = TraceFiles.read(zipped);
    Trace c = TraceFiles.read(packed);
    for (Trace t : new Trace[] {a, b, c}) {
      assertEquals(3, t.size());
      assertEquals(2, t.distinctKeys());
      assertEquals(Instant.parse("2001-01-01T05:01:00Z").toEpochMilli(), t.millis(0));
      assertEquals(Instant.parse("2001-01-01T05:01:30Z").toEpochMilli(), t.millis(1));
      assertEquals(978_325_320_000L, t.millis(2));
      assertEquals(KeyHash.hash("ORD-LAX"), t.hash(1));
      assertEquals(1116, t.bytes(0));
    }
  }

  @Test
  void aBadRowNamesTheFileAndLine() throws IOException {
    Path p = gzip("bad.csv.gz", CSV + "2001-01-01T05:02Z,DEN\n");
    TraceFormatException e = assertThrows(TraceFormatException.class, () -> TraceFiles.read(p));
    assertTrue(e.getMessage().startsWith(p + ":5: "), e.getMessage());
    Path q = Files.writeString(dir.resolve("bad2.csv"), "2001-01-01T05:02Z,DEN,1\nlater,X,1\n");
    e = assertThrows(TraceFormatException.class, () -> TraceFiles.read(q));
    assertTrue(e.getMessage().startsWith(q + ":2: timestamp 'later'"), e.getMessage());
  }

  @Test
  void missingEmptyAndBrokenFilesAreClearErrors() throws IOException {
    assertThrows(NoSuchFileException.class, () -> TraceFiles.read(dir.resolve("nope.csv")));
    IOException notFile = assertThrows(IOException.class, () -> TraceFiles.read(dir));
    assertTrue(notFile.getMessage().contains("not a regular file"));
    Path empty = Files.writeString(dir.resolve("empty.csv"), "ts,key,size\n");
    IllegalArgumentException none = assertThrows(IllegalArgumentException.class,
        () -> TraceFiles.read(empty));
    assertTrue(none.getMessage().contains("no events"));
    Path truncated = dir.resolve("cut.gz");
    byte[] whole = Files.readAllBytes(gzip("whole.gz", CSV.repeat(50)));
    Files.write(truncated, java.util.Arrays.copyOf(whole, whole.length / 2));
    IOException cut = assertThrows(IOException.class, () -> TraceFiles.read(truncated));
    assertTrue(cut.getMessage().contains(truncated.toString()) || cut.getMessage()
        .contains("gzip") || cut.getMessage().contains("end of"), cut.getMessage());
  }
}
