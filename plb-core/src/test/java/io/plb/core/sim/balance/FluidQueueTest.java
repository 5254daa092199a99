package io.plb.core.sim.balance;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class FluidQueueTest {
  @Test
  void overloadTimeAndDelaysOfAFillAndDrain() {
    DelayHistogram h = new DelayHistogram();
    FluidQueue q = new FluidQueue(10, 1.0, h);
    // 20/s against 10/s for 30 s: the backlog grows 0 -> 300, the delay 0 -> 30 s.
    q.advance(30, 20, 2);
    assertEquals(300, q.backlog(), 1e-9);
    assertEquals(29, q.overloadSeconds(), 1e-9); // above 1 s of delay (backlog 10) after 1 s
    // Nothing arrives: it drains 300 -> 0 in 30 s, above a backlog of 10 for 29 s.
    q.advance(60, 0, 0);
    assertEquals(0, q.backlog(), 1e-12);
    assertEquals(58, q.overloadSeconds(), 1e-9);
    assertEquals(60, q.messages(), 1e-9);
    // Delays of the 60 messages are uniform on [0, 30]: 29/30 of them wait more than 1 s.
    assertEquals(58, q.delayedMessages(), 1e-9);
    assertEquals(0.99 * 30, h.quantile(0.99), 0.99 * 30 * 0.012);
    assertEquals(15, h.quantile(0.5), 15 * 0.012);
  }

  @Test
  void underCapacityNothingWaits() {
    DelayHistogram h = new DelayHistogram();
    FluidQueue q = new FluidQueue(10, 1.0, h);
    q.advance(60, 9.99, 5);
    assertEquals(0, q.backlog());
    assertEquals(0, q.overloadSeconds());
    assertEquals(0, h.quantile(0.99));
    assertEquals(300, h.total(), 1e-9);
  }

  @Test
  void aLumpJoinsBehindTheBacklog() {
    DelayHistogram h = new DelayHistogram();
    FluidQueue q = new FluidQueue(2, 1.0, h);
    q.addLump(30, 15); // delays of the lump's messages: uniform on [0, 15] s
    assertEquals(30, q.backlog(), 1e-12);
    assertEquals(14, q.delayedMessages(), 1e-9);
    // Served at 2/s with 1/s arriving: drains 30 -> 0 in 30 s; above 2 (1 s) for 28 s.
    q.advance(60, 1, 0);
    assertEquals(28, q.overloadSeconds(), 1e-9);
    assertEquals(0, q.backlog(), 1e-12);
  }

  @Test
  void timeAboveALevelOnALinearPiece() {
    assertEquals(10, FluidQueue.timeAbove(5, 15, 10, 1), 1e-12);
    assertEquals(0, FluidQueue.timeAbove(0, 1, 10, 1), 1e-12);
    assertEquals(5, FluidQueue.timeAbove(0, 2, 10, 1), 1e-12);
    assertEquals(5, FluidQueue.timeAbove(2, 0, 10, 1), 1e-12);
  }

  @Test
  void histogramQuantilesOfPointMasses() {
    DelayHistogram h = new DelayHistogram();
    h.addPoint(0, 98);
    h.addPoint(2.0, 1);
    h.addPoint(100.0, 1);
    assertEquals(0, h.quantile(0.5));
    assertEquals(2.0, h.quantile(0.99), 2.0 * 0.012);
    assertEquals(100, h.quantile(1.0), 100 * 0.012);
  }
}
