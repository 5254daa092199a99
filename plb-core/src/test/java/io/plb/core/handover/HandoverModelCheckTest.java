package io.plb.core.handover;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/**
 * Model-checks the Promela model of the hold handover as built ({@code models/handover.pml}) by
 * running {@code models/check.sh}, the small set: every configuration must meet its expectation
 * (the rules hold; each mutation that removes a rule fails the property it protects; each witness
 * scenario is reachable). See {@code models/README.md}.
 *
 * <p>Needs Spin and gcc on PATH. Without Spin the test fails rather than skips: CI installs it,
 * and a model check that silently stops running is worse than none.
 */
class HandoverModelCheckTest {
  private static final long TIMEOUT_MINUTES = 10;

  @Test
  void modelHoldsAndEveryMutationFails() throws IOException, InterruptedException {
    Path root = repositoryRoot();
    assertNotNull(root, "models/check.sh not found in " + Path.of("").toAbsolutePath()
        + " or any folder above it");
    if (!onPath("spin")) {
      fail("The Spin model checker is not on PATH; the handover model check needs it. "
          + "Install it: apt-get install spin (or see https://spinroot.com). "
          + ".ci/run installs it when missing.");
    }

    Path log = Files.createTempFile("plb-model-check", ".log");
    try {
      Process p = new ProcessBuilder("bash", root.resolve("models/check.sh").toString())
          .directory(root.toFile())
          .redirectErrorStream(true)
          .redirectOutput(log.toFile())
          .start();
      if (!p.waitFor(TIMEOUT_MINUTES, TimeUnit.MINUTES)) {
        stop(p);
        fail("models/check.sh did not finish within " + TIMEOUT_MINUTES + " minutes; output:\n"
            + Files.readString(log, StandardCharsets.UTF_8));
      }
      String out = Files.readString(log, StandardCharsets.UTF_8);
      System.out.println(out);
      assertEquals(0, p.exitValue(), () -> "models/check.sh failed:\n" + out);
    } finally {
      Files.deleteIfExists(log);
    }
  }

  /** The nearest folder, from the working directory up, that holds models/check.sh. */
  private static Path repositoryRoot() {
    for (Path d = Path.of("").toAbsolutePath(); d != null; d = d.getParent()) {
      if (Files.isRegularFile(d.resolve("models/check.sh"))) {
        return d;
      }
    }
    return null;
  }

  private static boolean onPath(String command) {
    String path = System.getenv("PATH");
    if (path == null) {
      return false;
    }
    for (String dir : path.split(File.pathSeparator)) {
      if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, command))) {
        return true;
      }
    }
    return false;
  }

  /**
   * Ends the script and every process it started (the verifiers): SIGTERM first, so the script
   * removes its temporary folder, then SIGKILL whatever is left.
   */
  private static void stop(Process p) throws InterruptedException {
    List<ProcessHandle> all = p.descendants().collect(Collectors.toList());
    p.destroy();
    p.waitFor(5, TimeUnit.SECONDS);
    all.forEach(ProcessHandle::destroyForcibly);
    p.destroyForcibly();
    p.waitFor(5, TimeUnit.SECONDS);
  }
}
