package io.plb.server.simulate;

import io.plb.core.sim.balance.Trace;
import io.plb.core.sim.balance.TraceParser;
import java.io.BufferedInputStream;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.zip.GZIPInputStream;

/**
 * Reads a trace file ({@code ts,key,size} CSV, see {@link TraceParser}) into a {@link Trace}.
 * Gzip is recognised by its magic bytes, whatever the file is called. A bad row stops the read
 * with a {@link io.plb.core.sim.balance.TraceFormatException} naming the file and the line.
 */
public final class TraceFiles {
  private TraceFiles() {}

  /**
   * @throws IOException when the file cannot be read (the message names it)
   * @throws IllegalArgumentException when a row is bad or the file has no events
   */
  public static Trace read(Path file) throws IOException {
    String name = file.toString();
    if (!Files.isRegularFile(file)) {
      if (Files.exists(file)) {
        throw new IOException("trace " + name + " is not a regular file");
      }
      throw new NoSuchFileException(name, null, "no such trace file");
    }
    TraceParser parser = new TraceParser(name);
    Trace.Builder builder = new Trace.Builder(name);
    try (InputStream raw = new BufferedInputStream(Files.newInputStream(file), 1 << 16)) {
      raw.mark(2);
      int b1 = raw.read();
      int b2 = raw.read();
      raw.reset();
      InputStream in = b1 == 0x1f && b2 == 0x8b ? new GZIPInputStream(raw, 1 << 16) : raw;
      BufferedReader reader = new BufferedReader(new InputStreamReader(in,
          StandardCharsets.UTF_8.newDecoder()
              .onMalformedInput(CodingErrorAction.REPORT)
              .onUnmappableCharacter(CodingErrorAction.REPORT)), 1 << 16);
      long line = 0;
      String text;
      try {
        while ((text = reader.readLine()) != null) {
          parser.parseLine(text, ++line, builder);
        }
      } catch (CharacterCodingException e) {
        throw new IOException(name + ":" + (line + 1) + ": not UTF-8 text", e);
      }
    } catch (java.util.zip.ZipException e) {
      throw new IOException("trace " + name + " is not a valid gzip file: " + e.getMessage(), e);
    }
    if (builder.size() == 0) {
      throw new IllegalArgumentException("trace " + name + " has no events");
    }
    return builder.build(parser.distinctKeys());
  }
}
