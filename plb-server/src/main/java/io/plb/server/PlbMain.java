package io.plb.server;

import io.plb.client.cli.ConfigArgs;
import io.plb.server.config.NodeConfig;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

/**
 * {@code plb server --config FILE [--key=value ...]}: runs one PLB node until it is stopped
 * (SIGTERM or Ctrl-C stops it cleanly).
 */
public final class PlbMain {
  private PlbMain() {}

  public static void main(String[] args) throws Exception {
    if (args.length == 0 || args[0].equals("--help") || args[0].equals("-h")) {
      usage();
      System.exit(args.length == 0 ? 2 : 0);
    }
    String command = args[0];
    if (command.equals("simulate")) {
      System.exit(io.plb.server.simulate.SimulateCommand.run(
          java.util.Arrays.copyOfRange(args, 1, args.length), System.out, System.err));
    }
    if (!command.equals("server")) {
      System.err.println("plb: unknown command '" + command + "'");
      usage();
      System.exit(2);
    }
    ConfigArgs cli;
    try {
      cli = ConfigArgs.parse(args, 1);
    } catch (IllegalArgumentException e) {
      System.err.println("plb server: " + e.getMessage());
      System.exit(2);
      return;
    }
    if (cli.help()) {
      usage();
      System.exit(0);
    }
    NodeConfig config;
    try {
      config = NodeConfig.load(cli.configFile(), cli.overrides());
    } catch (IllegalArgumentException | java.io.IOException e) {
      System.err.println("plb server: bad configuration: " + e.getMessage());
      System.exit(2);
      return;
    }
    PlbNode node = PlbNode.start(config);
    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      node.close();
      stopped.countDown();
    }, "plb-shutdown"));
    stopped.await();
  }

  private static void usage() {
    StringBuilder b = new StringBuilder();
    b.append("usage: plb server --config FILE [--key=value ...]\n\n");
    b.append("Runs one PLB node. Settings come from FILE (key = value lines); --key=value\n");
    b.append("flags override them. Settings:\n\n");
    for (Map.Entry<String, String[]> e : NodeConfig.KEYS.entrySet()) {
      String def = e.getValue()[0].isEmpty() ? "(required)" : "default " + e.getValue()[0];
      b.append(String.format("  %-26s %s; %s%n", e.getKey(), e.getValue()[1], def));
    }
    System.out.print(b);
  }
}
