package io.plb.bench;

import java.io.IOException;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.Arrays;
import java.util.concurrent.locks.LockSupport;

/**
 * What the end-to-end harnesses share: percentile rows, the machine-load note, pacing, argument
 * parsing and clean-up. Stateless; every method is thread-safe.
 */
final class Bench {
  private Bench() {}

  /** Nearest-rank percentile of a sorted array. */
  static long pct(long[] sorted, double p) {
    if (sorted.length == 0) {
      return 0;
    }
    int rank = (int) Math.ceil(p / 100.0 * sorted.length);
    return sorted[Math.max(0, Math.min(sorted.length - 1, rank - 1))];
  }

  static String header(String name) {
    return String.format("%-44s %8s %9s %9s %9s %9s %9s %9s", name, "n", "min", "p50", "p90",
        "p99", "p99.9", "max");
  }

  /** One row of percentiles in ms from nanosecond samples. */
  static String row(String name, long[] nanos) {
    if (nanos.length == 0) {
      return String.format("%-44s %8d (no samples)", name, 0);
    }
    long[] s = nanos.clone();
    Arrays.sort(s);
    return String.format("%-44s %8d %9.2f %9.2f %9.2f %9.2f %9.2f %9.2f", name, s.length,
        s[0] / 1e6, pct(s, 50) / 1e6, pct(s, 90) / 1e6, pct(s, 99) / 1e6, pct(s, 99.9) / 1e6,
        s[s.length - 1] / 1e6);
  }

  /**
   * The machine's load now: the 1/5/15-minute load averages and the number of other JVMs and
   * Maven processes (other builds and tests on a shared machine).
   */
  static String load() {
    String avg;
    try {
      avg = Files.readString(Path.of("/proc/loadavg")).strip();
    } catch (IOException e) {
      avg = "n/a";
    }
    long self = ProcessHandle.current().pid();
    long[] other = {0, 0};
    ProcessHandle.allProcesses().forEach(p -> {
      if (p.pid() == self) {
        return;
      }
      String cmd = p.info().command().orElse("");
      String line = p.info().commandLine().orElse(cmd);
      if (cmd.endsWith("/java")) {
        other[0]++;
        if (line.contains("maven") || line.contains("plexus-classworlds")) {
          other[1]++;
        }
      }
    });
    return "loadavg " + avg + "; other java processes " + other[0] + " (of them Maven "
        + other[1] + ")";
  }

  /** Parks until {@code deadlineNanos} (System.nanoTime) has passed. For pacing, not waiting. */
  static void parkUntil(long deadlineNanos) {
    long left;
    while ((left = deadlineNanos - System.nanoTime()) > 0) {
      LockSupport.parkNanos(left);
    }
  }

  /** Wall-clock microseconds, the clock of the queue server's {@code accepted_at_micros}. */
  static long wallMicros() {
    java.time.Instant now = java.time.Instant.now();
    return now.getEpochSecond() * 1_000_000L + now.getNano() / 1_000;
  }

  static String value(String[] args, int i) {
    if (i >= args.length) {
      throw new IllegalArgumentException(args[i - 1] + " needs a value");
    }
    return args[i];
  }

  /**
   * A harness's {@code main}: runs it and ends the JVM with its exit status; a bad option's
   * message, or a failure with its stack trace, gives 1.
   */
  static void exitWith(String harness, java.util.concurrent.Callable<Integer> run) {
    int exit;
    try {
      exit = run.call();
    } catch (IllegalArgumentException e) {
      System.err.println(e.getMessage());
      exit = 1;
    } catch (Throwable t) {
      System.err.println(harness + " failed: " + t);
      t.printStackTrace();
      exit = 1;
    }
    System.out.flush();
    System.exit(exit);
  }

  /** A fresh folder for a run's cluster data: under {@code parent}, or the system's temp. */
  static Path tempRoot(Path parent, String prefix) throws IOException {
    return parent == null ? Files.createTempDirectory(prefix)
        : Files.createTempDirectory(parent, prefix);
  }

  static String ms(long nanos) {
    return String.format("%.1f", nanos / 1e6);
  }

  static void deleteTree(Path root) {
    if (!Files.exists(root)) {
      return;
    }
    try {
      Files.walkFileTree(root, new SimpleFileVisitor<>() {
        @Override
        public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
          Files.delete(file);
          return FileVisitResult.CONTINUE;
        }

        @Override
        public FileVisitResult postVisitDirectory(Path dir, IOException exc) throws IOException {
          Files.delete(dir);
          return FileVisitResult.CONTINUE;
        }
      });
    } catch (IOException e) {
      System.err.println("could not remove " + root + ": " + e);
    }
  }

  /**
   * A growable column of longs indexed from 0, in chunks so that growth never copies. Writers
   * write distinct indexes; a reader reads after a happens-before edge with the writers (a
   * counter they increment after writing, or a join). Chunk creation is synchronized.
   */
  static final class LongColumn {
    private static final int BITS = 14;
    private static final int CHUNK = 1 << BITS;
    private volatile long[][] chunks = new long[64][];

    void set(long index, long value) {
      chunk(index)[(int) (index & (CHUNK - 1))] = value;
    }

    long get(long index) {
      long[][] c = chunks;
      int ci = (int) (index >>> BITS);
      if (ci >= c.length || c[ci] == null) {
        return 0;
      }
      return c[ci][(int) (index & (CHUNK - 1))];
    }

    private long[] chunk(long index) {
      int ci = (int) (index >>> BITS);
      long[][] c = chunks;
      if (ci < c.length && c[ci] != null) {
        return c[ci];
      }
      synchronized (this) {
        c = chunks;
        if (ci >= c.length) {
          c = Arrays.copyOf(c, Math.max(ci + 1, c.length * 2));
        }
        if (c[ci] == null) {
          c[ci] = new long[CHUNK];
        }
        chunks = c;
        return c[ci];
      }
    }
  }
}
