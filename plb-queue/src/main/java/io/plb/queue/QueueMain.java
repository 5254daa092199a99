package io.plb.queue;

import io.plb.client.cli.ConfigArgs;
import io.plb.queue.config.QueueConfig;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

/**
 * {@code plb queue [--config FILE] [--key=value ...]}: runs one reference queue server until it
 * is stopped (SIGTERM or Ctrl-C stops it cleanly).
 */
public final class QueueMain {
  private QueueMain() {}

  public static void main(String[] args) throws Exception {
    ConfigArgs cli;
    try {
      cli = ConfigArgs.parse(args, args.length > 0 && args[0].equals("queue") ? 1 : 0);
    } catch (IllegalArgumentException e) {
      System.err.println("plb queue: " + e.getMessage());
      System.exit(2);
      return;
    }
    if (cli.help()) {
      usage();
      System.exit(0);
    }
    QueueConfig config;
    try {
      config = QueueConfig.load(cli.configFile(), cli.overrides());
    } catch (IllegalArgumentException | java.io.IOException e) {
      System.err.println("plb queue: bad configuration: " + e.getMessage());
      System.exit(2);
      return;
    }
    QueueServer server = QueueServer.start(config);
    System.out.println("queue server " + server.id() + " listening on " + server.address());
    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      server.close();
      stopped.countDown();
    }, "plb-queue-shutdown"));
    stopped.await();
  }

  private static void usage() {
    StringBuilder b = new StringBuilder();
    b.append("usage: plb queue [--config FILE] [--key=value ...]\n\n");
    b.append("Runs one reference queue server with its PLB agent. Settings come from FILE\n");
    b.append("(key = value lines); --key=value flags override them. Settings:\n\n");
    for (Map.Entry<String, String[]> e : QueueConfig.KEYS.entrySet()) {
      String def = e.getValue()[0].isEmpty() ? "(required)" : "default " + e.getValue()[0];
      b.append(String.format("  %-26s %s; %s%n", e.getKey(), e.getValue()[1], def));
    }
    System.out.print(b);
  }
}
