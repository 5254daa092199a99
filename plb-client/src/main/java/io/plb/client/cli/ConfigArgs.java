package io.plb.client.cli;

import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The command line of a long-running PLB process ({@code plb server}, {@code plb queue}):
 * {@code [--config FILE] [--key=value ...] [--help]}. Settings given as {@code --key=value}
 * override the file's, in order; a key given twice keeps the last value.
 *
 * @param configFile the {@code --config} file, or null
 * @param overrides the {@code --key=value} settings, in the order given
 * @param help whether {@code --help} or {@code -h} was given
 */
public record ConfigArgs(Path configFile, Map<String, String> overrides, boolean help) {
  /**
   * Parses {@code args} from index {@code from} on.
   *
   * @throws IllegalArgumentException naming an argument that is none of the above
   */
  public static ConfigArgs parse(String[] args, int from) {
    Path configFile = null;
    Map<String, String> overrides = new LinkedHashMap<>();
    boolean help = false;
    for (int i = from; i < args.length; i++) {
      String a = args[i];
      if (a.equals("--help") || a.equals("-h")) {
        help = true;
      } else if (a.equals("--config") && i + 1 < args.length) {
        configFile = Path.of(args[++i]);
      } else if (a.startsWith("--config=")) {
        configFile = Path.of(a.substring("--config=".length()));
      } else if (a.startsWith("--") && a.indexOf('=') > 2) {
        int eq = a.indexOf('=');
        overrides.put(a.substring(2, eq), a.substring(eq + 1));
      } else {
        throw new IllegalArgumentException("cannot read argument '" + a
            + "' (use --config FILE and --key=value)");
      }
    }
    return new ConfigArgs(configFile, Collections.unmodifiableMap(overrides), help);
  }
}
