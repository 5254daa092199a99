package io.plb.core.balancer;

import io.plb.core.balance.CostModel;
import io.plb.core.balance.LoadOutlook;
import io.plb.core.forecast.ForecastBank;
import io.plb.core.forecast.Forecast;
import io.plb.core.forecast.ForecasterConfig;
import io.plb.core.forecast.SeriesForecaster;
import io.plb.core.keyspace.Ring;
import io.plb.core.load.HotKey;
import io.plb.core.load.LoadBucket;
import io.plb.core.load.LoadFigures;
import io.plb.core.load.SliceLoad;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The leader's forecast of the load of every ring slice, fed from the committed load history
 * (DESIGN §6–7), and the {@link LoadOutlook} the planner plans on.
 *
 * <p><b>Two resolutions.</b> The seasonal part runs on <em>coarse</em> buckets: one
 * {@link ForecastBank} over the 4096 slices takes one value per slice per complete coarse bucket
 * (its cost rate: {@code cost.perMessage × messages in + cost.perByte × bytes in} over the time the
 * bucket covered), so a day is {@code season / coarseBucket} steps (288 at the defaults) and two
 * weeks of history fit in 4,608 floats a live slice. The <em>fine</em> buckets feed the near term:
 * they add up to the running (incomplete) coarse bucket, which becomes the bank's next value once a
 * fine bucket of a later coarse bucket arrives, and the last {@code min(horizon, coarseBucket)} of
 * them give each slice's <em>recent rate</em>.
 *
 * <p><b>Blend.</b> The bank's first forecast step is the running coarse bucket, about which the
 * fine buckets already know more. So over the horizon {@code H} starting at the end of the newest
 * fine bucket, the part {@code p = min(H, time left in the running coarse bucket) / H} is planned
 * at the recent rate (with the bank's spread for its upper quantile), the rest at the bank's
 * horizon forecast: {@code mean = p × recent + (1 − p) × seasonal mean}, {@code upper = p ×
 * (recent + seasonal spread) + (1 − p) × seasonal upper}. Before the bank has taken a coarse bucket,
 * {@code p = 1}; without recent fine buckets, {@code p = 0}.
 *
 * <p><b>Hot keys.</b> The hot keys of the recent fine buckets (by their lower-bound counts) become
 * point loads of the outlook, scaled like their slice, and are taken out of their slice's figures.
 *
 * <p><b>Backlog.</b> Each slice's queue depth in the newest fine bucket, costed at the slice's
 * mean message size, is the backlog the planner charges a move of a range for ({@link #backlog}).
 *
 * <p><b>Accuracy.</b> For each complete coarse bucket it keeps, per slice, the actual rate and the
 * one-step forecast issued before it (mean and upper quantile), for the last {@link #KEPT} buckets,
 * so {@link #view} can show actual against forecast for any part of the ring.
 *
 * <p>Not thread-safe: one owner (the leader's balancer thread). Pure: time is the buckets'.
 */
public final class LoadForecaster {
  /** Coarse buckets of actual-against-forecast kept for {@link #view}. */
  public static final int KEPT = 48;

  /**
   * How the forecaster works.
   *
   * @param fineMillis the history's fine bucket width
   * @param coarseMillis its coarse bucket width (a multiple of {@code fineMillis})
   * @param horizonMillis how far ahead the outlook looks
   * @param quantile the upper quantile planned for, in [0.5, 1)
   * @param cost the cost of messages and bytes
   * @param forecaster the bank's configuration, in coarse buckets
   * @param maxHotKeys hot keys listed in the outlook
   */
  public record Settings(long fineMillis, long coarseMillis, long horizonMillis, double quantile,
      CostModel cost, ForecasterConfig forecaster, int maxHotKeys) {
    public Settings {
      if (fineMillis <= 0 || coarseMillis < fineMillis || coarseMillis % fineMillis != 0) {
        throw new IllegalArgumentException("the coarse bucket (" + coarseMillis
            + " ms) must be a whole multiple of the fine bucket (" + fineMillis + " ms)");
      }
      if (horizonMillis <= 0) {
        throw new IllegalArgumentException("horizon must be > 0, got " + horizonMillis);
      }
      if (!(quantile >= 0.5 && quantile < 1)) {
        throw new IllegalArgumentException("quantile must be in [0.5, 1), got " + quantile);
      }
      if (cost == null || forecaster == null) {
        throw new IllegalArgumentException("cost and forecaster must be given");
      }
      if (maxHotKeys < 0) {
        throw new IllegalArgumentException("maxHotKeys must be >= 0, got " + maxHotKeys);
      }
    }

    /** Forecast steps (coarse buckets) covering the horizon, within the bank's horizon. */
    public int steps() {
      long n = (horizonMillis + coarseMillis - 1) / coarseMillis;
      return (int) Math.max(1, Math.min(forecaster.horizon(), n));
    }

    /** Fine buckets in the recent window: {@code min(horizon, coarse bucket)}, at least one. */
    public int recentBuckets() {
      return (int) Math.max(1, Math.min(horizonMillis, coarseMillis) / fineMillis);
    }
  }

  /** One fine bucket as the recent window keeps it: cost per slice and hot keys. */
  private record Fine(long start, long covered, int[] slices, double[] cost, List<HotKey> hot) {}

  /** Forecast health, for status. */
  public record Health(int liveSeries, Map<String, Integer> servedModels, int inFallback,
      long coarseBuckets, long newestFineMillis, long warmedBuckets) {}

  /** Actual against forecast for one coarse bucket of a scope (cost units per second). */
  public record Point(long startMillis, boolean hasActual, double actual, double forecast,
      double upper) {}

  /** How the forecasts of one slice are doing. */
  public record SliceAccuracy(int slice, double rate, SeriesForecaster.Accuracy accuracy) {}

  /** What {@link #view} shows for a scope. */
  public record View(List<Point> recent, List<Point> ahead, double wape, double mase,
      List<SliceAccuracy> series) {}

  private final Settings settings;
  private final ForecastBank bank;
  private final double[] runningCost = new double[Ring.SLICES];
  private long runningCovered;
  private long runningStart = -1;
  private long newestFine = -1;
  private long warmed;
  private long imputedBuckets;
  private final ArrayDeque<Fine> recent = new ArrayDeque<>();
  // Actual and one-step forecast per complete coarse bucket, by bucket count modulo KEPT.
  private final float[][] keptActual = new float[KEPT][];
  private final float[][] keptMean = new float[KEPT][];
  private final float[][] keptUpper = new float[KEPT][];
  private final long[] keptStart = new long[KEPT];
  private long kept;
  // The one-step forecast issued for the running coarse bucket.
  private final double[] nextMean = new double[Ring.SLICES];
  private final double[] nextUpper = new double[Ring.SLICES];
  // Per slice, the cost of what was queued at the newest fine bucket.
  private final double[] backlog = new double[Ring.SLICES];

  public LoadForecaster(Settings settings) {
    this.settings = settings;
    this.bank = new ForecastBank(Ring.SLICES, settings.forecaster());
  }

  public Settings settings() {
    return settings;
  }

  /**
   * Coarse buckets no report covered, filled in (with the forecast issued for them, or when
   * warming with the bucket a season earlier) rather than taken as no load; since construction.
   */
  public long imputedBuckets() {
    return imputedBuckets;
  }

  /** The coarse-bucket bank (read-only use: forecasts, accuracy). */
  public ForecastBank bank() {
    return bank;
  }

  /** The start of the newest fine bucket taken; -1 if none. */
  public long newestFineMillis() {
    return newestFine;
  }

  // ------------------------------------------------------------------ feeding

  /**
   * The coarse bucket the forecaster must be warmed from, given the newest fine bucket in the
   * history ({@code -1}: none): the bank takes complete coarse buckets before the running one,
   * at most {@code forecaster.history} of them.
   *
   * @return {@code [from, running)}: read coarse buckets starting in it
   */
  public long[] warmWindow(long newestFineMillis) {
    long cw = settings.coarseMillis();
    long running = Math.floorDiv(Math.max(0, newestFineMillis), cw) * cw;
    return new long[] {Math.max(0, running - settings.forecaster().history() * cw), running};
  }

  /**
   * Warms a new forecaster from stored history: {@code coarse} yields the coarse buckets in time
   * order (those outside {@link #warmWindow} are skipped; a missing one, which no report covered,
   * is filled with the same bucket a season earlier, or the one before it: see
   * {@link #observe}), read a page at a time by the caller so the whole history is never in
   * memory; {@code fine} (any order)
   * gives the running coarse bucket and the recent window. With no fine bucket, nothing is warmed.
   *
   * @throws IllegalStateException if the forecaster has taken buckets already
   */
  public void warm(java.util.Iterator<LoadBucket> coarse, List<LoadBucket> fine) {
    if (newestFine >= 0 || bank.buckets() > 0 || runningStart >= 0) {
      throw new IllegalStateException("only a new forecaster can be warmed");
    }
    if (fine.isEmpty()) {
      return;
    }
    List<LoadBucket> f = new ArrayList<>(fine);
    f.sort(Comparator.comparingLong(LoadBucket::startMillis));
    long cw = settings.coarseMillis();
    long[] window = warmWindow(f.get(f.size() - 1).startMillis());
    long running = window[1];
    long from = -1;
    int n = 0;
    // Floats while reading (half the memory of 4096 full series); each series becomes doubles
    // only while the bank takes it.
    float[][] series = new float[Ring.SLICES][];
    boolean[] present = null;
    while (coarse.hasNext()) {
      LoadBucket b = coarse.next();
      if (b.startMillis() < window[0] || b.startMillis() >= running || b.widthMillis() != cw) {
        continue;
      }
      if (from < 0) {
        // The series starts at the oldest stored coarse bucket of the window.
        from = b.startMillis();
        n = (int) ((running - from) / cw);
        present = new boolean[n];
      }
      if (b.coveredMillis() <= 0) {
        continue;
      }
      int j = (int) ((b.startMillis() - from) / cw);
      present[j] = true;
      for (SliceLoad s : b.slices()) {
        double rate = costOf(s) * 1000.0 / b.coveredMillis();
        if (rate > 0) {
          if (series[s.slice()] == null) {
            series[s.slice()] = new float[n];
          }
          series[s.slice()][j] = (float) rate;
        }
      }
    }
    if (n > 0) {
      int season = settings.forecaster().season();
      for (int j = 0; j < n; j++) {
        if (present[j]) {
          continue;
        }
        imputedBuckets++;
        for (float[] v : series) {
          if (v != null) {
            v[j] = j >= season ? v[j - season] : j > 0 ? v[j - 1] : 0f;
          }
        }
      }
      bank.loadHistory(n, i -> {
        float[] v = series[i];
        if (v == null) {
          return null;
        }
        series[i] = null;
        double[] d = new double[v.length];
        for (int k = 0; k < v.length; k++) {
          d[k] = v[k];
        }
        return d;
      });
      warmed = n;
      issueNext();
    }
    runningStart = running;
    for (LoadBucket b : f) {
      if (b.startMillis() >= running) {
        addToRunning(b);
      }
      addRecent(b);
      newestFine = b.startMillis();
    }
  }

  /**
   * Takes the next committed fine bucket. Buckets at or before the newest taken are ignored.
   *
   * @return whether it was taken
   */
  public boolean observe(LoadBucket fine) {
    if (fine.startMillis() <= newestFine) {
      return false;
    }
    long cw = settings.coarseMillis();
    long c = Math.floorDiv(fine.startMillis(), cw) * cw;
    if (runningStart < 0) {
      runningStart = c;
    }
    // Close the running coarse bucket, and any skipped, up to this one. A coarse bucket no report
    // covered (no leader, or no queue server reachable, for all of it) is a telemetry outage, not
    // an idle cluster: it is filled with the forecast issued for it, so an outage does not teach
    // the models that load fell to zero. Beyond the bank's history a gap changes nothing more.
    long gaps = 0;
    while (runningStart < c) {
      if (gaps++ < settings.forecaster().history()) {
        closeRunning();
      }
      runningStart += cw;
    }
    addToRunning(fine);
    addRecent(fine);
    newestFine = fine.startMillis();
    return true;
  }

  private void addToRunning(LoadBucket b) {
    for (SliceLoad s : b.slices()) {
      runningCost[s.slice()] += costOf(s);
    }
    runningCovered += b.coveredMillis();
  }

  private void addRecent(LoadBucket b) {
    // The newest bucket's queue depths are the backlog a move of the slice must drain first.
    java.util.Arrays.fill(backlog, 0);
    for (SliceLoad s : b.slices()) {
      LoadFigures f = s.load();
      double bytesPerMessage = f.messagesIn() > 0 ? (double) f.bytesIn() / f.messagesIn() : 0;
      backlog[s.slice()] = settings.cost().cost(f.queueDepth(),
          f.queueDepth() * bytesPerMessage);
    }
    int n = b.slices().size();
    int[] slices = new int[n];
    double[] cost = new double[n];
    for (int i = 0; i < n; i++) {
      SliceLoad s = b.slices().get(i);
      slices[i] = s.slice();
      cost[i] = costOf(s);
    }
    recent.addLast(new Fine(b.startMillis(), b.coveredMillis(), slices, cost,
        b.hotKeys().keys()));
    while (recent.size() > settings.recentBuckets()) {
      recent.removeFirst();
    }
  }

  private void closeRunning() {
    double[] values = new double[Ring.SLICES];
    boolean imputed = runningCovered <= 0 && bank.buckets() > 0;
    if (runningCovered > 0) {
      for (int i = 0; i < values.length; i++) {
        values[i] = runningCost[i] * 1000.0 / runningCovered;
      }
    } else if (imputed) {
      System.arraycopy(nextMean, 0, values, 0, values.length);
      imputedBuckets++;
    }
    if (bank.buckets() > 0 && !imputed) { // a filled-in bucket is no measure of accuracy
      int slot = (int) (kept % KEPT);
      keptStart[slot] = runningStart;
      keptActual[slot] = toFloats(values);
      keptMean[slot] = toFloats(nextMean);
      keptUpper[slot] = toFloats(nextUpper);
      kept++;
    }
    bank.observe(values);
    java.util.Arrays.fill(runningCost, 0);
    runningCovered = 0;
    issueNext();
  }

  private void issueNext() {
    bank.horizonRates(1, settings.quantile(), nextMean, nextUpper);
  }

  private double costOf(SliceLoad s) {
    return settings.cost().cost(s.load().messagesIn(), s.load().bytesIn());
  }

  private static float[] toFloats(double[] v) {
    float[] out = new float[v.length];
    for (int i = 0; i < v.length; i++) {
      out[i] = (float) v[i];
    }
    return out;
  }

  // ------------------------------------------------------------------ the outlook

  /** Each slice's rate over the recent fine buckets (cost units per second). */
  public double[] recentRates() {
    double[] out = new double[Ring.SLICES];
    long covered = 0;
    for (Fine f : recent) {
      covered += f.covered();
      for (int i = 0; i < f.slices().length; i++) {
        out[f.slices()[i]] += f.cost()[i];
      }
    }
    if (covered > 0) {
      for (int i = 0; i < out.length; i++) {
        out[i] = out[i] * 1000.0 / covered;
      }
    }
    return out;
  }

  /** The share of the horizon planned at the recent rate (see the class comment). */
  public double nearShare() {
    if (recent.isEmpty()) {
      return 0;
    }
    if (bank.buckets() == 0) {
      return 1;
    }
    long now = newestFine + settings.fineMillis();
    long left = Math.max(0, runningStart + settings.coarseMillis() - now);
    return Math.min(settings.horizonMillis(), left) / (double) settings.horizonMillis();
  }

  /** The planner's input: every slice's planned mean and upper rate over the horizon. */
  public LoadOutlook outlook() {
    double[] mean = new double[Ring.SLICES];
    double[] upper = new double[Ring.SLICES];
    if (bank.buckets() > 0) {
      bank.horizonRates(settings.steps(), settings.quantile(), mean, upper);
    }
    double[] near = recentRates();
    double p = nearShare();
    for (int i = 0; i < mean.length; i++) {
      double spread = Math.max(0, upper[i] - mean[i]);
      double m = p * near[i] + (1 - p) * mean[i];
      double u = p * (near[i] + spread) + (1 - p) * upper[i];
      mean[i] = Math.max(0, m);
      upper[i] = Math.max(mean[i], u);
    }
    List<LoadOutlook.HotKey> hot = new ArrayList<>();
    for (HotKeyRate k : recentHotKeys()) {
      int s = Ring.sliceOf(k.hash());
      if (near[s] <= 0 || mean[s] <= 0) {
        continue;
      }
      // The key moves with its slice: its share of the slice's recent load, of the planned load.
      double share = Math.min(1, k.rate() / near[s]);
      double km = share * mean[s];
      double ku = share * upper[s];
      mean[s] = Math.max(0, mean[s] - km);
      upper[s] = Math.max(mean[s], upper[s] - ku);
      hot.add(new LoadOutlook.HotKey(k.hash(), km, ku));
    }
    return LoadOutlook.ofSlices(mean, upper, hot);
  }

  /**
   * The cost queued in {@code [start, end)} at the newest fine bucket (queue depth per slice, each
   * message at the slice's mean size then), a slice counted by the share of it the range covers.
   */
  public double backlog(long start, long end) {
    int first = Ring.sliceOf(start);
    int last = Ring.lastSliceOf(end);
    double sum = 0;
    for (int i = first; i <= last; i++) {
      if (backlog[i] > 0) {
        sum += sliceShare(i, start, end) * backlog[i];
      }
    }
    return sum;
  }

  /** The share of slice {@code s} that {@code [start, end)} covers (it must overlap it). */
  private static double sliceShare(int s, long start, long end) {
    long sStart = Ring.sliceStart(s);
    long sEnd = Ring.sliceStart(s + 1);
    long a = Long.compareUnsigned(start, sStart) > 0 ? start : sStart;
    long b = sEnd == Ring.RING_END ? end
        : end == Ring.RING_END || Long.compareUnsigned(end, sEnd) > 0 ? sEnd : end;
    return Math.min(1, Ring.width(a, b) / Math.pow(2, 64 - Ring.SLICE_BITS));
  }

  /** A hot key's recent rate. */
  public record HotKeyRate(long hash, double rate) {}

  /** The hottest keys of the recent fine buckets, by their lower-bound rate, hottest first. */
  public List<HotKeyRate> recentHotKeys() {
    if (settings.maxHotKeys() == 0 || recent.isEmpty()) {
      return List.of();
    }
    Map<Long, double[]> sums = new HashMap<>();
    long covered = 0;
    for (Fine f : recent) {
      covered += f.covered();
      for (HotKey k : f.hot()) {
        double[] a = sums.computeIfAbsent(k.hash(), h -> new double[2]);
        long lower = k.lowerBound();
        a[0] += lower;
        // Bytes were seen while the key was tracked: scale them to the lower-bound count.
        a[1] += k.count() == 0 ? 0 : k.bytes() * (double) lower / k.count();
      }
    }
    if (covered <= 0) {
      return List.of();
    }
    List<HotKeyRate> out = new ArrayList<>();
    for (Map.Entry<Long, double[]> e : sums.entrySet()) {
      double rate = settings.cost().cost(e.getValue()[0], e.getValue()[1]) * 1000.0 / covered;
      if (rate > 0) {
        out.add(new HotKeyRate(e.getKey(), rate));
      }
    }
    out.sort(Comparator.comparingDouble(HotKeyRate::rate).reversed()
        .thenComparing(HotKeyRate::hash, Long::compareUnsigned));
    return out.size() > settings.maxHotKeys() ? out.subList(0, settings.maxHotKeys()) : out;
  }

  /** The models serving the live series, as "model×count" in descending count. */
  public String modelSummary() {
    if (bank.buckets() == 0) {
      return "recent rate (no complete coarse bucket yet)";
    }
    List<Map.Entry<String, Integer>> models = new ArrayList<>(bank.servedModels().entrySet());
    if (models.isEmpty()) {
      return "idle";
    }
    models.sort(Map.Entry.<String, Integer>comparingByValue().reversed());
    StringBuilder b = new StringBuilder();
    for (Map.Entry<String, Integer> e : models) {
      if (b.length() > 0) {
        b.append(", ");
      }
      b.append(e.getKey()).append('×').append(e.getValue());
    }
    return b.toString();
  }

  /** The model serving one slice now ("idle" while it has seen no load, "recent" before any). */
  public String modelOf(int slice) {
    if (bank.buckets() == 0) {
      return "recent";
    }
    SeriesForecaster s = bank.series(slice);
    return s == null ? "idle" : s.currentModel();
  }

  /**
   * The model serving most of the slices of {@code [start, end)} (with "+N" when others serve
   * some of them too): what a cause names as the forecast behind a decision.
   */
  public String modelOfRange(long start, long end) {
    if (bank.buckets() == 0) {
      return "recent";
    }
    int first = Ring.sliceOf(start);
    int last = Ring.lastSliceOf(end);
    Map<String, Integer> counts = new java.util.TreeMap<>();
    for (int i = first; i <= last; i++) {
      SeriesForecaster s = bank.series(i);
      if (s != null) {
        counts.merge(s.currentModel(), 1, Integer::sum);
      }
    }
    if (counts.isEmpty()) {
      return "idle";
    }
    String best = null;
    for (Map.Entry<String, Integer> e : counts.entrySet()) {
      if (best == null || e.getValue() > counts.get(best)) {
        best = e.getKey();
      }
    }
    return counts.size() == 1 ? best : best + " +" + (counts.size() - 1) + " other model(s)";
  }

  // ------------------------------------------------------------------ reading

  public Health health() {
    return new Health(bank.live(), bank.servedModels(), bank.inFallback(), bank.buckets(),
        newestFine, warmed);
  }

  /**
   * Actual against forecast for the part of the ring given by {@code weights} (per slice, the
   * share of the slice in the scope, 0..1), for the last {@code buckets} complete coarse buckets,
   * and the forecast for the next steps.
   */
  public View view(double[] weights, int buckets) {
    if (weights.length != Ring.SLICES) {
      throw new IllegalArgumentException("need " + Ring.SLICES + " weights");
    }
    int n = (int) Math.min(Math.min(buckets, KEPT), kept);
    List<Point> points = new ArrayList<>();
    double absErr = 0;
    double total = 0;
    for (long k = kept - n; k < kept; k++) {
      int slot = (int) (k % KEPT);
      double a = 0;
      double f = 0;
      double u = 0;
      for (int i = 0; i < Ring.SLICES; i++) {
        double w = weights[i];
        if (w > 0) {
          a += w * keptActual[slot][i];
          f += w * keptMean[slot][i];
          u += w * keptUpper[slot][i];
        }
      }
      points.add(new Point(keptStart[slot], true, a, f, u));
      absErr += Math.abs(a - f);
      total += a;
    }
    List<Point> ahead = new ArrayList<>();
    int steps = settings.forecaster().horizon();
    double[] mean = new double[steps];
    double[] upper = new double[steps];
    List<SliceAccuracy> series = new ArrayList<>();
    if (bank.buckets() > 0) {
      double ratio = Forecast.z(settings.quantile())
          / Forecast.z((1 + settings.forecaster().coverage()) / 2);
      for (int i = 0; i < Ring.SLICES; i++) {
        double w = weights[i];
        SeriesForecaster s = bank.series(i);
        if (w <= 0 || s == null) {
          continue;
        }
        Forecast fc = s.forecast(steps);
        for (int k = 0; k < steps; k++) {
          mean[k] += w * fc.mean()[k];
          upper[k] += w * (fc.mean()[k] + (fc.upper()[k] - fc.mean()[k]) * ratio);
        }
        double rate = kept > 0 ? keptActual[(int) ((kept - 1) % KEPT)][i] : 0;
        series.add(new SliceAccuracy(i, rate, s.accuracy()));
      }
      for (int k = 0; k < steps; k++) {
        ahead.add(new Point(runningStart + k * settings.coarseMillis(), false, 0, mean[k],
            Math.max(mean[k], upper[k])));
      }
    }
    series.sort(Comparator.comparingDouble(SliceAccuracy::rate).reversed()
        .thenComparingInt(SliceAccuracy::slice));
    double maseSum = 0;
    double maseWeight = 0;
    for (SliceAccuracy s : series) {
      double m = s.accuracy().mase();
      if (Double.isFinite(m) && s.rate() > 0) {
        maseSum += m * s.rate();
        maseWeight += s.rate();
      }
    }
    return new View(points, ahead, total > 0 ? absErr / total : Double.NaN,
        maseWeight > 0 ? maseSum / maseWeight : Double.NaN,
        series.size() > 16 ? List.copyOf(series.subList(0, 16)) : List.copyOf(series));
  }

  /**
   * Per slice, the share of it that the ranges {@code [starts[j], ends[j])} cover (ranges must
   * not overlap).
   */
  public static double[] weightsOf(long[] starts, long[] ends) {
    double[] w = new double[Ring.SLICES];
    for (int j = 0; j < starts.length; j++) {
      long start = starts[j];
      long end = ends[j];
      int first = Ring.sliceOf(start);
      int last = Ring.lastSliceOf(end);
      for (int s = first; s <= last; s++) {
        w[s] += sliceShare(s, start, end);
      }
    }
    for (int s = 0; s < w.length; s++) {
      w[s] = Math.min(1, w[s]);
    }
    return w;
  }
}
