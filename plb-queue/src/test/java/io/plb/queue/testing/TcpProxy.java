package io.plb.queue.testing;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A TCP relay on loopback in front of one server, that can lose answers: while replies are
 * {@linkplain #swallowReplies() swallowed}, what the server sends is read and dropped, while the
 * client's bytes still reach it; {@link #reset()} then breaks every connection with a TCP reset,
 * as a proxy or a network fault does after a request was handled but before its answer arrived.
 * The target port may be set after the proxy listens (a server that must advertise the proxy's
 * address starts after it).
 *
 * <p>Thread model: one accept thread, two relay threads per connection; the switches are
 * volatile. {@link #close} stops everything.
 */
public final class TcpProxy implements AutoCloseable {
  private final ServerSocket listener;
  private final List<Socket> sockets = new CopyOnWriteArrayList<>();
  private volatile int targetPort;
  private volatile boolean swallow;
  private volatile boolean closed;

  public TcpProxy() throws IOException {
    listener = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
    Thread t = new Thread(this::accept, "tcp-proxy-accept");
    t.setDaemon(true);
    t.start();
  }

  /** The address clients reach the proxy at. */
  public String address() {
    return "127.0.0.1:" + listener.getLocalPort();
  }

  public void target(int port) {
    this.targetPort = port;
  }

  /** From now on, the server's bytes are dropped (the client's still pass). */
  public void swallowReplies() {
    swallow = true;
  }

  /** Breaks every open connection with a reset, and relays replies again on new ones. */
  public void reset() {
    for (Socket s : sockets) {
      try {
        s.setSoLinger(true, 0); // close() then sends RST, not FIN
        s.close();
      } catch (IOException e) {
        // closed already
      }
    }
    sockets.clear();
    swallow = false;
  }

  private void accept() {
    while (!closed) {
      try {
        Socket client = listener.accept();
        Socket server = new Socket(InetAddress.getLoopbackAddress(), targetPort);
        sockets.add(client);
        sockets.add(server);
        relay(client, server, false);
        relay(server, client, true);
      } catch (IOException e) {
        if (closed) {
          return;
        }
      }
    }
  }

  private void relay(Socket from, Socket to, boolean replies) {
    Thread t = new Thread(() -> {
      byte[] buf = new byte[16 << 10];
      try (InputStream in = from.getInputStream(); OutputStream out = to.getOutputStream()) {
        int n;
        while ((n = in.read(buf)) >= 0) {
          if (!(replies && swallow)) {
            out.write(buf, 0, n);
            out.flush();
          }
        }
      } catch (IOException e) {
        // the connection broke or was reset: the other direction notices too
      } finally {
        quietClose(from);
        quietClose(to);
      }
    }, "tcp-proxy-relay");
    t.setDaemon(true);
    t.start();
  }

  private static void quietClose(Socket s) {
    try {
      s.close();
    } catch (IOException e) {
      // closed already
    }
  }

  @Override
  public void close() {
    closed = true;
    reset();
    quietClose(listener);
  }

  private static void quietClose(ServerSocket s) {
    try {
      s.close();
    } catch (IOException e) {
      // closed already
    }
  }
}
