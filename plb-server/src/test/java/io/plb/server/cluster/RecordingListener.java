package io.plb.server.cluster;

import io.plb.client.watch.MapWatcher;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import java.util.ArrayList;
import java.util.List;

/**
 * Records what a {@link MapWatcher} delivers and checks, as it goes, that versions only grow and
 * that every delta follows the version seen before it. Thread-safe.
 */
final class RecordingListener implements MapWatcher.Listener {
  private final List<Long> versions = new ArrayList<>();
  private final List<String> violations = new ArrayList<>();
  private int fullMaps;
  private volatile long last = -1;

  @Override
  public synchronized void onMap(ClusterImage image, MapDelta delta) {
    if (image.version() <= last) {
      violations.add("version went from " + last + " to " + image.version());
    }
    if (delta != null && delta.prevVersion() != last) {
      violations.add("delta " + delta.version() + " follows " + delta.prevVersion()
          + " but the last version seen was " + last);
    }
    if (delta == null) {
      fullMaps++;
    }
    versions.add(image.version());
    last = image.version();
  }

  long last() {
    return last;
  }

  synchronized int fullMaps() {
    return fullMaps;
  }

  synchronized List<String> violations() {
    return new ArrayList<>(violations);
  }

  synchronized List<Long> versions() {
    return new ArrayList<>(versions);
  }
}
