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
 * <p>Thread model: one accepting thread, two copying threads per connection; {@link #cut} and
 * {@link #close} may be called from any thread.
 */
public final class CuttableProxy implements AutoCloseable {
  private volatile InetSocketAddress target;
  private final ServerSocket server;
  private final List<Socket> open = new CopyOnWriteArrayList<>();
  private volatile boolean closed;
  private volatile boolean swallow;

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

  private void copy(Socket from, Socket to, boolean replies) {
    Thread t = new Thread(() -> {
      byte[] buf = new byte[64 * 1024];
      try (InputStream in = from.getInputStream(); OutputStream out = to.getOutputStream()) {
        for (int n; (n = in.read(buf)) >= 0; ) {
          if (!(replies && swallow)) {
            out.write(buf, 0, n);
          }
        }
      } catch (IOException e) {
        // cut, or one side went away
      } finally {
        closeQuietly(from);
        closeQuietly(to);
      }
    }, "proxy-copy");
    t.setDaemon(true);
    t.start();
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
