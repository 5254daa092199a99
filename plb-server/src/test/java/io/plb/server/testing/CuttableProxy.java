package io.plb.server.testing;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A TCP proxy on a free loopback port in front of one address, whose connections a test can cut
 * at a moment it chooses: what a client sees when the network between it and a node fails in the
 * middle of a stream. New connections are still accepted after a cut. It can also lose answers:
 * while replies are {@linkplain #swallowReplies() swallowed}, the server's bytes are read and
 * dropped while the client's still reach it — a request handled whose answer never arrives, as
 * before a proxy or network fault resets the connection ({@link #cut}). The target may be set
 * after the proxy listens ({@link #target(int)}): a server that advertises the proxy's address
 * starts after it.
 *
 * It can also add latency ({@link #delay}): every chunk it reads, either way, is written
 * {@code delay} later, in order — a slow network path, beneath whatever the client and server
 * do about it.
 *
 * <p>Thread model: one accepting thread, and per connection and direction a reading and a
 * writing thread (the delay line between them); {@link #cut}, {@link #delay} and {@link #close}
 * may be called from any thread.
 */
public final class CuttableProxy implements AutoCloseable {
  private volatile InetSocketAddress target;
  private final ServerSocket server;
  private final List<Socket> open = new CopyOnWriteArrayList<>();
  private volatile boolean closed;
  private volatile boolean swallow;
  private volatile long delayNanos;

  public CuttableProxy(String targetHostPort) throws IOException {
    this();
    int colon = targetHostPort.lastIndexOf(':');
    this.target = new InetSocketAddress(targetHostPort.substring(0, colon),
        Integer.parseInt(targetHostPort.substring(colon + 1)));
  }

  /** A proxy whose target port on loopback is set later with {@link #target(int)}. */
  public CuttableProxy() throws IOException {
    this.server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
    Thread t = new Thread(this::accept, "proxy-accept");
    t.setDaemon(true);
    t.start();
  }

  /** The proxy's own {@code host:port}. */
  public String address() {
    return "127.0.0.1:" + server.getLocalPort();
  }

  /** Relays to {@code port} on loopback from now on. */
  public void target(int port) {
    this.target = new InetSocketAddress(InetAddress.getLoopbackAddress(), port);
  }

  /** From now on the server's bytes are dropped; the client's still pass. Until {@link #cut}. */
  public void swallowReplies() {
    swallow = true;
  }

  /**
   * From now on every chunk read, either way, is written {@code delay} later (zero: at once);
   * chunks already on their way keep their time, and nothing overtakes.
   */
  public void delay(java.time.Duration delay) {
    delayNanos = delay.toNanos();
  }

  /**
   * Closes every connection open now, at once, with a TCP reset for both ends; new connections
   * relay replies again.
   */
  public void cut() {
    for (Socket s : open) {
      try {
        s.setSoLinger(true, 0); // close() then sends RST, not FIN
      } catch (IOException ignored) {
        // already closed
      }
      closeQuietly(s);
    }
    open.clear();
    swallow = false;
  }

  private void accept() {
    while (!closed) {
      try {
        Socket client = server.accept();
        Socket upstream = new Socket();
        InetSocketAddress to = target;
        try {
          if (to == null) {
            throw new IOException("no target yet");
          }
          upstream.connect(to, 5_000);
        } catch (IOException e) {
          closeQuietly(client);
          continue;
        }
        open.add(client);
        open.add(upstream);
        copy(client, upstream, false);
        copy(upstream, client, true);
      } catch (IOException e) {
        return; // closed
      }
    }
  }

  /** A chunk on its way and when it is due (System.nanoTime); an empty one ends the line. */
  private record Chunk(byte[] bytes, long due) {}

  private void copy(Socket from, Socket to, boolean replies) {
    java.util.concurrent.BlockingQueue<Chunk> line =
        new java.util.concurrent.LinkedBlockingQueue<>();
    Thread reader = new Thread(() -> {
      byte[] buf = new byte[64 * 1024];
      try (InputStream in = from.getInputStream()) {
        for (int n; (n = in.read(buf)) >= 0; ) {
          if (!(replies && swallow)) {
            line.add(new Chunk(java.util.Arrays.copyOf(buf, n), System.nanoTime() + delayNanos));
          }
        }
      } catch (IOException e) {
        // cut, or one side went away
      } finally {
        line.add(new Chunk(new byte[0], 0));
      }
    }, "proxy-read");
    Thread writer = new Thread(() -> {
      try (OutputStream out = to.getOutputStream()) {
        while (true) {
          Chunk c = line.take();
          if (c.bytes().length == 0) {
            break;
          }
          for (long wait; (wait = c.due() - System.nanoTime()) > 0; ) {
            java.util.concurrent.locks.LockSupport.parkNanos(wait); // the latency itself
          }
          out.write(c.bytes());
        }
      } catch (IOException | InterruptedException e) {
        // cut, or one side went away
      } finally {
        closeQuietly(from);
        closeQuietly(to);
      }
    }, "proxy-write");
    reader.setDaemon(true);
    writer.setDaemon(true);
    reader.start();
    writer.start();
  }

  private static void closeQuietly(Socket s) {
    try {
      s.close();
    } catch (IOException ignored) {
      // already closed
    }
  }

  @Override
  public void close() {
    closed = true;
    closeQuietly(server);
    cut();
  }

  private static void closeQuietly(ServerSocket s) {
    try {
      s.close();
    } catch (IOException ignored) {
      // already closed
    }
  }
}
