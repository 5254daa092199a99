package io.plb.server.simulate;

import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * A line chart over time written as plain SVG: one polyline per series (broken where a value is
 * NaN), time on the x axis with date labels, a linear y axis with round ticks, an optional
 * horizontal reference line, and a legend. Enough for the simulator's plots without a plotting
 * library.
 */
final class SvgChart {
  private static final String[] COLOURS = {
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf"
  };
  private static final int WIDTH = 1200;
  private static final int HEIGHT = 420;
  private static final int LEFT = 70;
  private static final int RIGHT = 190;
  private static final int TOP = 40;
  private static final int BOTTOM = 50;

  private record Line(String name, double[] values) {}

  private final String title;
  private final String yLabel;
  private final long startMillis;
  private final long stepMillis;
  private final List<Line> lines = new ArrayList<>();
  private double reference = Double.NaN;
  private String referenceLabel = "";

  /**
   * @param startMillis the time of the first value
   * @param stepMillis the time between values
   */
  SvgChart(String title, String yLabel, long startMillis, long stepMillis) {
    this.title = title;
    this.yLabel = yLabel;
    this.startMillis = startMillis;
    this.stepMillis = stepMillis;
  }

  SvgChart line(String name, double[] values) {
    lines.add(new Line(name, values));
    return this;
  }

  SvgChart reference(double y, String label) {
    this.reference = y;
    this.referenceLabel = label;
    return this;
  }

  String render() {
    int points = 0;
    double max = Double.NEGATIVE_INFINITY;
    double min = Double.POSITIVE_INFINITY;
    for (Line l : lines) {
      points = Math.max(points, l.values.length);
      for (double v : l.values) {
        if (!Double.isNaN(v)) {
          max = Math.max(max, v);
          min = Math.min(min, v);
        }
      }
    }
    if (!Double.isNaN(reference)) {
      max = Math.max(max, reference);
      min = Math.min(min, reference);
    }
    if (max == Double.NEGATIVE_INFINITY) {
      max = 1;
      min = 0;
    }
    min = Math.min(0, min);
    if (max <= min) {
      max = min + 1;
    }
    double tick = niceStep((max - min) / 5);
    max = Math.ceil(max / tick) * tick;
    int plotW = WIDTH - LEFT - RIGHT;
    int plotH = HEIGHT - TOP - BOTTOM;
    double xScale = points > 1 ? (double) plotW / (points - 1) : 0;
    final double lo = min;
    final double span = max - min;

    StringBuilder b = new StringBuilder();
    b.append(String.format(Locale.ROOT,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            + "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">%n",
        WIDTH, HEIGHT, WIDTH, HEIGHT));
    b.append("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    b.append(String.format(Locale.ROOT,
        "<text x=\"%d\" y=\"24\" font-size=\"15\" font-weight=\"bold\">%s</text>%n",
        LEFT, escape(title)));
    // Y axis, grid and ticks.
    for (double v = min; v <= max + tick / 2; v += tick) {
      double y = TOP + plotH - (v - lo) / span * plotH;
      b.append(String.format(Locale.ROOT,
          "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>%n",
          LEFT, y, LEFT + plotW, y));
      b.append(String.format(Locale.ROOT,
          "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>%n",
          LEFT - 6, y + 4, formatTick(v, tick)));
    }
    b.append(String.format(Locale.ROOT,
        "<text x=\"16\" y=\"%d\" transform=\"rotate(-90 16 %d)\" text-anchor=\"middle\">%s</text>%n",
        TOP + plotH / 2, TOP + plotH / 2, escape(yLabel)));
    // X axis: date ticks, about eight of them, at whole days when the span allows.
    long spanMillis = Math.max(1, (long) (points - 1) * stepMillis);
    long day = 86_400_000L;
    long hour = 3_600_000L;
    long[] steps = {60_000L, 600_000L, hour, 3 * hour, 6 * hour, 12 * hour, day, 2 * day,
        7 * day, 14 * day, 28 * day, 91 * day, 364 * day};
    long xTick = steps[steps.length - 1];
    for (long candidate : steps) {
      if (spanMillis / candidate <= 10) {
        xTick = candidate;
        break;
      }
    }
    DateTimeFormatter fmt = DateTimeFormatter.ofPattern(
        xTick >= day ? "yyyy-MM-dd" : "MM-dd HH:mm").withZone(ZoneOffset.UTC);
    // Weekly ticks fall on Mondays (1970-01-05 was one).
    long offset = xTick % (7 * day) == 0 ? 4 * day : 0;
    long firstTick = Math.floorDiv(startMillis - offset + xTick - 1, xTick) * xTick + offset;
    for (long t = firstTick; t <= startMillis + spanMillis; t += xTick) {
      double x = LEFT + (double) (t - startMillis) / stepMillis * xScale;
      b.append(String.format(Locale.ROOT,
          "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#e5e5e5\"/>%n",
          x, TOP, x, TOP + plotH));
      b.append(String.format(Locale.ROOT,
          "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>%n",
          x, TOP + plotH + 18, fmt.format(Instant.ofEpochMilli(t))));
    }
    b.append(String.format(Locale.ROOT,
        "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">time (UTC)</text>%n",
        LEFT + plotW / 2, HEIGHT - 8));
    b.append(String.format(Locale.ROOT,
        "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#555\"/>%n",
        LEFT, TOP, plotW, plotH));
    if (!Double.isNaN(reference)) {
      double y = TOP + plotH - (reference - lo) / span * plotH;
      b.append(String.format(Locale.ROOT,
          "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#000\" "
              + "stroke-dasharray=\"6 4\"/>%n", LEFT, y, LEFT + plotW, y));
      b.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%.1f\">%s</text>%n",
          LEFT + 6, y - 4, escape(referenceLabel)));
    }
    // Series.
    for (int i = 0; i < lines.size(); i++) {
      Line l = lines.get(i);
      String colour = COLOURS[i % COLOURS.length];
      StringBuilder pts = new StringBuilder();
      for (int k = 0; k <= l.values.length; k++) {
        double v = k < l.values.length ? l.values[k] : Double.NaN;
        if (Double.isNaN(v)) {
          if (pts.length() > 0) {
            b.append("<polyline fill=\"none\" stroke=\"").append(colour)
                .append("\" stroke-width=\"1.2\" points=\"").append(pts).append("\"/>\n");
            pts.setLength(0);
          }
          continue;
        }
        double x = LEFT + k * xScale;
        double y = TOP + plotH - (v - lo) / span * plotH;
        pts.append(String.format(Locale.ROOT, "%.1f,%.1f ", x, y));
      }
      int ly = TOP + 10 + i * 18;
      b.append(String.format(Locale.ROOT,
          "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"3\"/>%n",
          LEFT + plotW + 10, ly, LEFT + plotW + 30, ly, colour));
      b.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\">%s</text>%n",
          LEFT + plotW + 36, ly + 4, escape(l.name)));
    }
    b.append("</svg>\n");
    return b.toString();
  }

  private static double niceStep(double raw) {
    if (!(raw > 0)) {
      return 1;
    }
    double mag = Math.pow(10, Math.floor(Math.log10(raw)));
    double f = raw / mag;
    double nice = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
    return nice * mag;
  }

  private static String formatTick(double v, double tick) {
    if (Math.abs(v) >= 1e6) {
      return String.format(Locale.ROOT, "%.3gM", v / 1e6);
    }
    if (tick >= 1) {
      return String.format(Locale.ROOT, "%.0f", v);
    }
    int decimals = (int) Math.ceil(-Math.log10(tick));
    return String.format(Locale.ROOT, "%." + decimals + "f", v);
  }

  static String escape(String s) {
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        .replace("\"", "&quot;");
  }
}
