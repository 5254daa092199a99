/*
 * handover.pml -- Promela model of the PLB hold handover AS BUILT
 *
 * The model follows the code, not the reference design: where they differ, the code wins and
 * the difference is listed under "Departures" below.  Sources it follows:
 *   plb-core  handover/Participant.java   a queue server's hold rules (place, onMap,
 *                                         onBacklogEmpty, acceptTransfer, onTransferStored,
 *                                         onTransferAcked, onTransferRefused)
 *   plb-core  handover/SendBarrier.java   the router's barrier (C4) and ordered resends
 *   plb-core  command/Handovers.java      the committed map phases and report handling
 *   plb-core  test .../sim/HandoverSimulation.java   how the agent carries out the actions
 *                                         (buffers, releases, transfers, the consumer)
 * Starting point: shared/models/handover.pml (the reference model of DESIGN.md section 5).
 *
 * One key range R and two queue servers A (0) and B (1).  A starts as R's owner.  A PLB
 * leader commits a totally ordered sequence of map versions; each server and each router
 * applies them one at a time, in order, each at its own pace (a watch stream with arbitrary
 * delay).  The leader runs ATTEMPTS handovers of R one after the other; each moves R from its
 * current owner to the other server and ends in COMPLETE, in an abort from PREPARE, or in an
 * abort from SWITCH (reverse run) cleared by FinishAbort.  So with ATTEMPTS=2 the model covers
 * a second attempt after an aborted one (same direction again) and a range that comes back
 * (B -> A after a completed A -> B).  Two producers, each behind its own router, publish N0
 * and N1 messages of one key in R over FIFO links.  A consumer takes messages from the head of
 * each server's deliverable queue.  Checked:
 *   A1 exactly once     no message is delivered twice
 *   A2 order            per producer, delivery order = send order
 *   A4 no loss          when nothing can move any more: every producer has finished (all its
 *                       messages acknowledged), every acknowledged message was delivered
 *                       exactly once, no handover is left open, every server's queue and
 *                       buffers are empty, and no process is in an invalid end state
 *   A5 (model sanity)   when a server drops a handover's side, that handover's buffers are
 *                       empty (justifies keeping one set of buffers per server instead of
 *                       one per (range, epoch)); the source is never "orphaned" (that needs a
 *                       DOWN server, not modelled)
 *   live (LTL, -DLIVE)  on every run, all messages are eventually delivered
 *
 * Run the checked configurations (the expectations, states and times: models/README.md):
 *   models/check.sh              # the small set, as CI runs it; --full for the bigger ones
 * Run one configuration (every -D is optional; the defaults are the code as built, 2+2
 * sequential messages, one attempt, no abort):
 *   spin -a -DN0=2 -DN1=0 -DPIPE=1 -DABORT=3 -DATTEMPTS=1 handover.pml
 *   gcc -O2 -DSAFETY -DNOCLAIM -DCOLLAPSE -o pan pan.c
 *   ./pan -m20000 -w24           # A1, A2, A4, A5; "errors: 0" = holds for this configuration
 * Shortest counterexample and a readable story of it:
 *   spin -a -DBFS_TRAIL <same -D flags> handover.pml
 *   gcc -O2 -DBFS -DSAFETY -DNOCLAIM -o pan pan.c && ./pan
 *   spin -t -DBFS_TRAIL <same -D flags> handover.pml       # prints the events in order
 * Liveness (add -A to ./pan to see the LTL verdict alone, ignoring assertions):
 *   spin -a -DLIVE <flags> handover.pml && gcc -O2 -DCOLLAPSE -o pan pan.c && ./pan -m2000000 -a
 *
 * Scenario switches
 *   N0, N1     messages per producer, 0..3
 *   PIPE       1: a router sends its next message before the previous one is settled (the
 *                 simulation's window = N); 0: window 1
 *   ATTEMPTS   handovers the leader runs one after the other, 0..2 (0 = no handover)
 *   ABORT      bit 1: the leader may abort from PREPARE; bit 2: from SWITCH (3 = both)
 *   STALE      1: router 0 starts only after the leader's last attempt has ended, with the
 *                 initial map, and its watch moves only while it is behind a refusal's version
 *   NOOP       1: the leader may commit one version that does not change R's entry (so two
 *                 versions share one map entry, as with changes to other ranges)
 *   WITNESS    W_FENCE, W_DEDUP, W_RETRY, W_COMEBACK, W_LATE, W_REFUSE_XFER (defined below):
 *              A4 then also asserts !(WITNESS) at the end, so "errors: 1" proves that the
 *              scenario is reachable (a coverage check of the model itself)
 * Protocol switches (1 = as built; 0 = the rule removed, for mutation runs)
 *   SEAL_FIRST  C1 seal and take the hold buffer in one step (0: send the buffer, seal later)
 *   FIX_CATCHUP C2 wait for the map a message was routed under (0: handle it under whatever
 *                  map the server has; transfers still wait)
 *   FIX_TAG     C3 after an abort the source refuses messages tagged before the abort
 *   FIX_BARRIER C4 SendBarrier: while a send is unsettled, send only under the same map
 *                  entry; resend refused ones in order once all have settled (0: the
 *                  first draft's barrier, which compares only the destination)
 *   FENCE       the per-producer refusal fence in Participant.place
 *   EPOCH_BUMP  clearing an aborted handover bumps the epoch (Handovers.closed)
 *   FIX_HELD    C5, as built (Participant.decide and onMap, Side.switchVersion): the target
 *                  takes a message into its held queue only if it is tagged at or after the
 *                  first version at which it saw this handover in SWITCH; an older one is
 *                  refused (and raises the fence).  0 = the rule removed, for mutation runs:
 *                  the held queue takes any message in SWITCH.  See "Finding" below.
 *   DEDUP       how the agent keeps a message from being queued twice: 1 (as the simulation's
 *               agent does): a transfer is stored without ids already in that buffer, and a
 *               release drops ids this server has already queued; 0: no de-duplication;
 *               2: a transfer is stored without ids the server still holds anywhere (queue
 *               or any buffer), no check at release (one reading of acceptTransfer's Javadoc)
 *
 * Departures from the reference model / reference design, all taken from the code:
 *   - COMPLETE is not a phase: HandoverDrained sets owner = target, epoch + 1, no handover.
 *   - A handover is (range, epoch + 1); clearing an aborted handover (from PREPARE or, via
 *     FinishAbort, from SWITCH) bumps the epoch, owner unchanged.  The clearing of a reversed
 *     handover IS modelled (the reference model abstracted it away), and so is a second
 *     attempt on the same range.
 *   - The refusal fence (Participant.place): once a server refused a message of R from a
 *     producer at version V, it refuses every later message of R from that producer tagged
 *     below V.  A fence refusal does not raise the fence.  The reference design has no fence.
 *   - The target takes nothing before SWITCH and refuses everything from the moment it applies
 *     ABORT_SWITCH (it seals and snapshots PREFIX+HELD for the handback in that same step);
 *     the reference's target took messages until its reverse transfer.
 *   - After an abort the source releases, in one step when the handback is stored: HOLD
 *     (unless its buffer was transferred and acknowledged: then it is discarded, since the
 *     handback returns it first), RETURNED, POST_ABORT; later arrivals tagged at or after the
 *     abort go straight to its queue.  It then reports FinishAbort.
 *   - Transfers are asynchronous messages with a tag (the sender's version), waited on by the
 *     receiver like a publish (C2), answered by an ack or a refusal; the reference model made
 *     each transfer one atomic step.  The forward ack can lose the race with the handback:
 *     then the source releases HOLD and RETURNED, which both hold the transferred messages,
 *     and only the agent's de-duplication keeps A1 (see DEDUP).
 *   - Reports (HandoverReady, HandoverDrained, FinishAbort) are separate calls that may reach
 *     the leader in any order and late; the leader ignores one whose (range, epoch) or phase
 *     no longer holds (Handovers.isOpen).
 *   - C5 (not in the reference design, which has C1-C4): the target's held queue takes only
 *     messages tagged at or after the version at which it first saw the handover in SWITCH.
 *   - The router tags with its view, resends all refused messages of R together once every
 *     send of R settled and its view reached the refusals' version, in sequence order, and
 *     sends nothing new while a refused message waits (SendBarrier.maySend/takeResends).
 *   - The backlog that must drain before the seal is the source's whole deliverable queue of R
 *     (the model has one range).
 * Property A3 of the reference (single deliverer) is not checked: with several attempts the
 * range's deliverer changes back and forth, and the code has no such rule; A1, A2, A4 are the
 * properties promised.
 *
 * Abstractions and what is left out:
 *   - Left out: crashes and restarts (persisted sides and fences), forced handovers and the
 *     Orphaned action (both need a server declared DOWN), leader change and fencing by term,
 *     message loss and the agent's timer resends (Participant.resend), duplicated reports and
 *     transfers (the DUPLICATE verdict).  The seeded simulation covers loss, resends and
 *     duplicated reports; nothing checks crashes or forced handovers yet.
 *   - Links are FIFO per router->server, server->router and server->server pair and lose
 *     nothing (the code needs FIFO per link: DESIGN section 5 "Transport"; the reference model
 *     showed reordering breaks pipelined order even without a handover).
 *   - One range, one key per producer (order is checked per producer); the consumer delivers
 *     and acknowledges in one step.
 *   - Each Participant call together with the agent's handling of the actions it returns is
 *     one atomic step (the agent calls it under one lock); the consumer, each arrival, each
 *     map version and each transfer is a separate step.  onBacklogEmpty is enabled whenever
 *     the queue is empty in SWITCH (the agent checks at particular moments: a subset).
 *   - Since every version the leader commits changes R's entry (unless NOOP), "same map
 *     entry" and "same version" coincide, except for the NOOP version.
 *   - A server keeps one set of buffers, not one per (range, epoch): A5 checks that a
 *     handover's buffers are empty whenever the server drops its side.
 *
 * Finding: a message of an older entry in the held queue (rule C5)
 *   Before C5 the target's held queue took any message that reached it in SWITCH (FIX_HELD=0),
 *   and A2 fails.  The first counterexample, -DN0=2 -DN1=0 -DPIPE=1 -DABORT=3 -DATTEMPTS=2
 *   (the same events are possible with -DPIPE=0 -DABORT=2; one producer P0, m1 then m2):
 *     v1 PREPARE A -> B, v2 SWITCH.  A seals at once (empty backlog) and refuses m1 (tagged
 *        v0); the router resends m1 tagged v2, to B, where it stays on the link.
 *     v3 ABORT_SWITCH: B hands back (nothing), A reports FinishAbort, v4 clears the handover
 *        (epoch 1).  Second attempt: v5 PREPARE, v6 SWITCH (handover epoch 2).
 *     B applies v6, then takes m1 (tag v2 <= v6, so C2 lets it through) into the held queue
 *        of the second attempt and acknowledges it.
 *     P0's router, at v5 (owner A), sends m2 tagged v5 to A; A holds it, seals and transfers
 *        it to B as the prefix.
 *     v7 completes the move; B releases the prefix (m2), then the held queue (m1): m2 is
 *        delivered before m1.
 *   No abort is needed when the range comes back (-DATTEMPTS=2 -DABORT=0): m1, tagged v0 for
 *   A, waits on the link while R moves A -> B (v1-v3) and starts back (v4 PREPARE, v5 SWITCH
 *   B -> A); A takes m1 into its held queue, P0 (its router at v4) sends m2 to B, and B's hold
 *   buffer reaches A as the prefix, ahead of m1.  And when the second attempt is aborted too,
 *   m1 returns to A in the handback, which A releases after its hold buffer with m2.  In each
 *   case a message routed under an older entry (an aborted attempt's SWITCH, or the time the
 *   target owned the range) joins the held queue of a later handover and overtakes a message
 *   sent after it that goes through the source.  The reference model could not see it: it has
 *   one handover and versions 0..3.
 *   C5 (FIX_HELD=1): the target records the first version at which it saw the handover in
 *   SWITCH and takes into its held queue only messages tagged at or after it.  An older one
 *   is refused and raises the fence; the router resends it tagged with a newer version and
 *   sends nothing new meanwhile, so m2 follows it.  With C5 the configurations above hold
 *   (models/check.sh: comeback, retry-switch-2 with 19 M states, and the others).
 */

/* ------------------------------------------------------------------ switches */
#ifndef N0
#define N0 2
#endif
#ifndef N1
#define N1 2
#endif
#ifndef PIPE
#define PIPE 0
#endif
#ifndef ATTEMPTS
#define ATTEMPTS 1
#endif
#ifndef ABORT
#define ABORT 0
#endif
#ifndef STALE
#define STALE 0
#endif
#ifndef NOOP
#define NOOP 0
#endif
#ifndef SEAL_FIRST
#define SEAL_FIRST 1
#endif
#ifndef FIX_CATCHUP
#define FIX_CATCHUP 1
#endif
#ifndef FIX_TAG
#define FIX_TAG 1
#endif
#ifndef FIX_BARRIER
#define FIX_BARRIER 1
#endif
#ifndef FENCE
#define FENCE 1
#endif
#ifndef EPOCH_BUMP
#define EPOCH_BUMP 1
#endif
#ifndef DEDUP
#define DEDUP 1
#endif
#ifndef FIX_HELD
#define FIX_HELD 1
#endif
#define TRACK_VIEW (FIX_BARRIER && PIPE)   /* window 1 never needs the entry of a send */

/* ------------------------------------------------------------------ constants */
#define NMAX  3                   /* capacity of each router<->server link          */
#define M     (N0 + N1 + 1)       /* capacity of each buffer                        */
#define QCAP  (2 * (N0 + N1) + 1) /* a queue (room for duplicates with DEDUP=0)     */
#define NV    (1 + 4 * ATTEMPTS + NOOP + 1)   /* map versions 0..                    */

/* phase of R's handover at a version (Handover.phase, or none) */
#define NONE      0
#define PREPARE   1
#define SWITCH    2
#define ABORT_SW  3

/* reports to the leader */
#define READY     1               /* HandoverReady (target)                          */
#define DRAINED   2               /* HandoverDrained (source)                        */
#define REVERSED  3               /* FinishAbort (source, after the handback)        */

/* transfer directions */
#define FWD 0                     /* source -> target: the sealed hold buffer        */
#define REV 1                     /* target -> source after an abort: PREFIX, HELD   */

/* placements (Participant.Placement; WAIT is the link's wait marker below) */
#define P_QUEUE  0
#define P_HOLD   1
#define P_HELD   2
#define P_POST   3
#define P_REFUSE 4

/* transfer verdicts */
#define V_ACCEPT 0
#define V_REFUSE 1
#define V_DUP    2

/* ------------------------------------------------------------------ the committed map */
byte own[NV];                  /* R's owner at version v (0 = A, 1 = B)             */
byte ep[NV];                   /* R's epoch at version v                            */
byte ph[NV];                   /* R's handover phase at version v (target = 1-owner) */
byte V;                        /* latest committed version                          */
byte att;                      /* attempts started                                  */
#if NOOP
bit  noopDone;
#endif

#define DEST(v)   ((ph[v] == SWITCH) -> 1 - own[v] : own[v])    /* Entry.destination()  */
#define SAME(a,b) (own[a] == own[b] && ep[a] == ep[b] && ph[a] == ph[b])
#define LEADER_DONE (att == ATTEMPTS && ph[V] == NONE)

/* ------------------------------------------------------------------ links */
#define PL(s,p) ((s) * 2 + (p))                     /* link index: server s, producer p */
chan pub[4] = [NMAX] of { byte, byte };             /* publish: seq, tag                 */
chan rep[4] = [NMAX] of { byte, bit, byte };        /* reply: seq, ok, server's version  */
chan xctl[2] = [3] of { bit, byte, byte, byte };    /* transfer to s: dir, he, tag, count */
chan xdat[2] = [QCAP] of { byte };                  /* its message ids, in order          */
chan xrep[2] = [3] of { bit, byte, bit };           /* transfer answer to s: dir, he, ok  */
chan lead = [6] of { byte, byte };                  /* reports: kind, handover epoch      */

/* ------------------------------------------------------------------ queue servers */
byte v[2];                     /* the map version the server applied                */
/* Participant.Side of the one handover the server takes part in */
bit  sOn[2], sSrc[2], sSeal[2], sBufX[2], sPfx[2], sRet[2];
byte sHe[2], sAbV[2];
#if FIX_HELD
byte sSwV[2];                  /* proposed C5: the version the target applied SWITCH */
#endif
#if !SEAL_FIRST
bit  sXf[2];                   /* mutation only: buffer sent, not yet sealed         */
#endif
byte fence[4];                 /* refusal fence per (server, producer): version      */
byte wt[4];                    /* publish link waits for this version (C2, WAIT)     */
byte xwt[2];                   /* transfer link into the server waits for a version  */
byte inQ[2];                   /* ids this server ever put in its queue (agent)      */
chan Q[2]    = [QCAP] of { byte };   /* deliverable queue of R                      */
chan HOLD[2] = [M] of { byte };      /* source: arrivals after SWITCH                */
chan POST[2] = [M] of { byte };      /* source: arrivals after the abort             */
chan RET[2]  = [M] of { byte };      /* source: the target's handback                */
chan PFX[2]  = [M] of { byte };      /* target: the source's transfer                */
chan HELD[2] = [M] of { byte };      /* target: arrivals in SWITCH                   */

/* ------------------------------------------------------------------ observer */
bit  acked[8];                 /* the producer has an ack for this message id        */
byte delivCnt[8];
byte lastDel[2];
byte nDone;                    /* producers finished                                 */
#ifdef WITNESS
byte nFence, nDrop, nLate, nXref;
bit  abortedSw, comeBack;
#define COUNT(x) x++
#define MARK(x) x = 1
/* named WITNESS expressions */
#define W_FENCE      (nFence > 0)     /* the fence refused what the rules would take     */
#define W_DEDUP      (nDrop > 0)      /* a release dropped an already queued message     */
#define W_RETRY      (abortedSw && att == 2 && ph[V] == NONE && own[V] == 1) /* 2nd attempt done after a reversal */
#define W_COMEBACK   (comeBack)       /* R moved A -> B -> A                             */
#define W_LATE       (nLate > 0)      /* the leader ignored a report                     */
#define W_REFUSE_XFER (nXref > 0)     /* a transfer was refused                          */
#else
#define COUNT(x) skip
#define MARK(x) skip
#endif

#ifdef BFS_TRAIL
#define HIDDEN
#else
#define HIDDEN hidden
#endif
/* scratch, used only inside one d_step */
HIDDEN byte hs, htag, hver, hm, hw, hhe, hn, hn2, hd, hdst;
HIDDEN byte hok, hdir;
HIDDEN byte lo, le, lf;                          /* the leader's COMMIT */

#define ID(p,s)   ((p)*4 + (s))           /* message id: producer p, sequence s (1..3) */
#define SEQ(m)    ((m) & 3)
#define PROD(m)   ((m) >> 2)
#define BIT(s)    (1 << ((s)-1))
#define MBIT(m)   (1 << (m))
#define NOF(p)    ((p) == 0 -> N0 : N1)
#define SNAME(s)  ((s) == 0 -> 'A' : 'B')

#define ALLDELIVERED ((N0 < 1 || delivCnt[1] == 1) && (N0 < 2 || delivCnt[2] == 1) && \
                      (N0 < 3 || delivCnt[3] == 1) && (N1 < 1 || delivCnt[5] == 1) && \
                      (N1 < 2 || delivCnt[6] == 1) && (N1 < 3 || delivCnt[7] == 1))

/* the consumer: one delivery by server `who`; A1, A2 */
inline DELIVER(m, who) {
  printf("DELIVER P%d.m%d by %c\n", PROD(m), SEQ(m), SNAME(who));
  assert(delivCnt[m] == 0);                      /* A1 exactly once        */
  delivCnt[m]++;
  assert(SEQ(m) > lastDel[PROD(m)]);             /* A2 per-producer order  */
  lastDel[PROD(m)] = SEQ(m)
}

/* ------------------------------------------------------------------ buffer operations */
inline DISCARD(b) {                              /* Action.Discard */
  do
  :: nempty(b) -> b?hm
  :: empty(b) -> break
  od
}

/* Action.Release of one buffer: append to the queue, in order.  DEDUP=1: the agent drops
 * a message it already queued here (HandoverSimulation: holds.add) */
inline RELEASE(b, s) {
  do
  :: nempty(b) -> b?hm;
     if
     :: DEDUP == 1 && (inQ[s] & MBIT(hm)) -> COUNT(nDrop);
        printf("%c: release drops P%d.m%d, already queued\n", SNAME(s), PROD(hm), SEQ(hm))
     :: else -> Q[s]!hm; inQ[s] = inQ[s] | MBIT(hm)
     fi
  :: empty(b) -> break
  od
}

inline COPY(b, dst) {                            /* append a copy of b to dst; hn += count */
  hn2 = len(b);
  do
  :: hn2 > 0 -> b?hm; b!hm; dst!hm; hn2--; hn++
  :: else -> break
  od
}

/* does server s hold message hm anywhere (queue or buffer)?  for DEDUP=2 */
#define HOLDS(s) (Q[s]??[eval(hm)] || HOLD[s]??[eval(hm)] || POST[s]??[eval(hm)] || \
                  RET[s]??[eval(hm)] || PFX[s]??[eval(hm)] || HELD[s]??[eval(hm)])

/* store hn ids from xdat[s] into buffer b (agent's receiveTransfer) */
inline STORE(s, b) {
  do
  :: hn > 0 -> xdat[s]?hm; hn--;
     if
     :: DEDUP == 1 && b??[eval(hm)] -> skip     /* a resent transfer stores nothing twice */
     :: DEDUP == 2 && HOLDS(s) -> COUNT(nDrop);
        printf("%c: store drops P%d.m%d, already held\n", SNAME(s), PROD(hm), SEQ(hm))
     :: else -> b!hm
     fi
  :: hn == 0 -> break
  od
}

inline DROPN(s) {
  do
  :: hn > 0 -> xdat[s]?hm; hn--
  :: hn == 0 -> break
  od
}

inline SIDE_CLEAR(s) {
  sOn[s] = 0; sSrc[s] = 0; sSeal[s] = 0; sBufX[s] = 0; sPfx[s] = 0; sRet[s] = 0;
  sHe[s] = 0; sAbV[s] = 0;
#if FIX_HELD
  sSwV[s] = 0;
#endif
#if !SEAL_FIRST
  sXf[s] = 0;
#endif
}

#define BUFFERS_EMPTY(s) (empty(HOLD[s]) && empty(POST[s]) && empty(RET[s]) && \
                          empty(PFX[s]) && empty(HELD[s]))

/* ------------------------------------------------------------------ PLB leader */
inline COMMIT(o, e, f) {                        /* arguments may read version V */
  lo = o; le = e; lf = f;
  V++; own[V] = lo; ep[V] = le; ph[V] = lf;
  printf("LEADER commits v%d: owner %c epoch %d phase %d\n", V, SNAME(lo), le, lf)
}

#define OPEN(h, f) (ph[V] == f && ep[V] + 1 == h)       /* Handovers.isOpen */
#define LATE       COUNT(nLate); printf("LEADER ignores a late report\n")

proctype Leader() {
  byte h;
end:
  do
  :: d_step { ph[V] == NONE && att < ATTEMPTS ->           /* StartHandover */
              att++; COMMIT(own[V], ep[V], PREPARE) }
  :: d_step { lead??READY,h ->                             /* HandoverReady */
              if :: OPEN(h, PREPARE) -> COMMIT(own[V], ep[V], SWITCH) :: else -> LATE fi }
  :: d_step { lead??DRAINED,h ->                           /* HandoverDrained = COMPLETE */
              if
              :: OPEN(h, SWITCH) ->
#ifdef WITNESS
                 if :: own[V] == 1 -> comeBack = 1 :: else fi;
#endif
                 COMMIT(1 - own[V], h, NONE)
              :: else -> LATE
              fi }
  :: d_step { lead??REVERSED,h ->                          /* FinishAbort: clear */
              if :: OPEN(h, ABORT_SW) -> COMMIT(own[V], ep[V] + EPOCH_BUMP, NONE) :: else -> LATE fi }
#if ABORT & 1
  :: d_step { ph[V] == PREPARE -> COMMIT(own[V], ep[V] + EPOCH_BUMP, NONE) }  /* prepareTimeout */
#endif
#if ABORT & 2
  :: d_step { ph[V] == SWITCH -> MARK(abortedSw); COMMIT(own[V], ep[V], ABORT_SW) } /* drainTimeout */
#endif
#if NOOP
  :: d_step { !noopDone -> noopDone = 1; COMMIT(own[V], ep[V], ph[V]) }  /* another range's change */
#endif
  od
}

/* ------------------------------------------------------------------ router + producer */
#if FIX_BARRIER
/* SendBarrier: new messages only while nothing refused waits and every unsettled send went
 * under the current entry; resends once all settled and the view reached the refusals */
#if TRACK_VIEW
#define MAY_SEND  (pend == 0 && ((inf0 | inf1) == 0 || SAME(uv, view)))
#define NOTE_VIEW uv = view
#else
#define MAY_SEND  (pend == 0 && (inf0 | inf1) == 0)
#define NOTE_VIEW skip
#endif
#define MAY_RESEND (pend != 0 && (inf0 | inf1) == 0 && view >= refV)
#else
/* mutation: the first draft's barrier, on the destination only; resends one at a time */
#define BARRIER_OK ((DEST(view) == 0) -> (inf1 == 0) : (inf0 == 0))
#define MAY_SEND   (pend == 0 && BARRIER_OK && (PIPE || (inf0 | inf1) == 0))
#define MAY_RESEND (pend != 0 && view >= refV && BARRIER_OK)
#define NOTE_VIEW  skip
#endif

inline SEND(s) {                                 /* route s under the router's view */
  hdst = DEST(view);
  if
  :: hdst == 0 -> pub[PL(0,p)]!s,view; inf0 = inf0 | BIT(s)
  :: else      -> pub[PL(1,p)]!s,view; inf1 = inf1 | BIT(s)
  fi;
  printf("P%d: send m%d tagged v%d to %c\n", p, s, view, SNAME(hdst))
}

/* one reply: an ack, or WRONG_OWNER with the server's version */
inline ON_REPLY(inf, srv) {
  inf = inf & ~BIT(hs);
  if
  :: hok -> acked[ID(p,hs)] = 1; printf("P%d: ack m%d from %c (v%d)\n", p, hs, SNAME(srv), hver)
  :: else -> pend = pend | BIT(hs); if :: hver > refV -> refV = hver :: else fi;
     printf("P%d: WRONG_OWNER m%d from %c (v%d)\n", p, hs, SNAME(srv), hver)
  fi
}

#define P_DONE (next > NOF(p) && pend == 0 && (inf0 | inf1) == 0)

proctype Producer(byte p) {
  byte view;                 /* the router's map version (tag of its sends)      */
  byte refV;                 /* SendBarrier.refusalVersion                       */
  byte next = 1;             /* next new sequence number                         */
  byte pend;                 /* refused, to be resent (bit per sequence number)  */
  byte inf0, inf1;           /* unsettled sends to A, to B (bit per seq)         */
#if TRACK_VIEW
  byte uv;                   /* the entry (version) of the unsettled sends       */
#endif
#if STALE
  bit started = (p != 0);
#endif
  do
  :: d_step { (view < V && !P_DONE                       /* watch: next version */
#if STALE
      && (p != 0 || view < refV)
#endif
     ) -> view++; printf("P%d: router sees v%d\n", p, view) }

  :: d_step {                                            /* resend the refused ones */
       (MAY_RESEND
#if STALE
        && (started || LEADER_DONE)
#endif
       ) ->
#if FIX_BARRIER
       if :: pend & 1 -> SEND(1) :: else fi;             /* all of them, in order */
       if :: pend & 2 -> SEND(2) :: else fi;
       if :: pend & 4 -> SEND(3) :: else fi;
       pend = 0;
#else
       if                                                /* the lowest one */
       :: pend & 1 -> SEND(1); pend = pend & ~1
       :: (pend & 3) == 2 -> SEND(2); pend = pend & ~2
       :: (pend & 3) == 0 -> SEND(3); pend = pend & ~4
       fi;
#endif
       NOTE_VIEW }

  :: d_step {                                            /* a new message */
       (MAY_SEND && next <= NOF(p)
#if STALE
        && (started || LEADER_DONE)
#endif
       ) ->
#if STALE
       started = 1;
#endif
       SEND(next); next++; NOTE_VIEW }

  :: d_step { rep[PL(0,p)]?hs,hok,hver -> ON_REPLY(inf0, 0) }
  :: d_step { rep[PL(1,p)]?hs,hok,hver -> ON_REPLY(inf1, 1) }

  :: P_DONE -> nDone++; break                            /* (its view no longer matters) */
  od
}

/* ------------------------------------------------------------------ Participant.onMap */
inline SEND_XFER(s, dir, he) {                   /* Action.Transfer, sealed buffers */
  hn = 0;
  if
  :: dir == FWD -> COPY(HOLD[s], xdat[1-s])
  :: else -> COPY(PFX[s], xdat[1-s]); COPY(HELD[s], xdat[1-s])
  fi;
  xctl[1-s]!dir,he,v[s],hn;
  printf("%c: transfer %d (%d msgs) to %c, tag v%d\n", SNAME(s), dir, hn, SNAME(1-s), v[s])
}

inline ON_MAP(s) {
  v[s]++; hw = v[s];
  printf("%c sees v%d\n", SNAME(s), hw);
  /* a handover that ended, or changed under us */
  if
  :: sOn[s] && !(ph[hw] != NONE && ep[hw] + 1 == sHe[s]) ->
     if
     :: sSrc[s] ->
        if
        :: ep[hw] == sHe[s] && own[hw] != s -> DISCARD(HOLD[s])   /* COMPLETE */
        :: else -> assert(own[hw] == s)       /* Orphaned needs a DOWN server (A5) */
        fi                                    /* else: the reversal finished */
     :: else ->
        if
        :: own[hw] == s && ep[hw] == sHe[s] ->                    /* COMPLETE: release */
           RELEASE(PFX[s], s); RELEASE(HELD[s], s)
        :: else -> DISCARD(PFX[s]); DISCARD(HELD[s])             /* aborted */
        fi
     fi;
     assert(BUFFERS_EMPTY(s));                /* A5: nothing of this handover is left */
     SIDE_CLEAR(s)
  :: else
  fi;
  /* handovers we take part in */
  if
  :: ph[hw] != NONE ->
     hhe = ep[hw] + 1;
     if
     :: own[hw] == s ->                       /* source */
        if
        :: !sOn[s] && ph[hw] != PREPARE -> sOn[s] = 1; sSrc[s] = 1; sHe[s] = hhe
        :: else                               /* (AwaitBacklog: the seal step below) */
        fi;
        if :: sOn[s] && ph[hw] == ABORT_SW && sAbV[s] == 0 -> sAbV[s] = hw :: else fi
     :: else ->                               /* target */
        if
        :: !sOn[s] -> sOn[s] = 1; sHe[s] = hhe; lead!READY,hhe
        :: else
        fi;
#if FIX_HELD
        if :: ph[hw] == SWITCH && sSwV[s] == 0 -> sSwV[s] = hw :: else fi;
#endif
        if
        :: ph[hw] == ABORT_SW && !sSeal[s] ->   /* run backwards: seal, hand all back */
           sSeal[s] = 1; sAbV[s] = hw; SEND_XFER(s, REV, hhe)
        :: else
        fi
     fi
  :: else
  fi
}

/* ------------------------------------------------------------------ Participant.place */
inline DECIDE(s) {
  if
  :: ph[hw] == NONE -> hd = ((own[hw] == s) -> P_QUEUE : P_REFUSE)
  :: ph[hw] != NONE && own[hw] == s ->
     if
     :: ph[hw] == PREPARE -> hd = P_QUEUE
     :: ph[hw] == SWITCH -> assert(sOn[s]); hd = ((sSeal[s]) -> P_REFUSE : P_HOLD)
     :: ph[hw] == ABORT_SW ->
        if
        :: !sOn[s] || (FIX_TAG && htag < sAbV[s]) -> hd = P_REFUSE    /* C3 */
        :: else -> hd = ((sRet[s]) -> P_QUEUE : P_POST)
        fi
     fi
  :: ph[hw] != NONE && own[hw] != s ->
     hd = ((ph[hw] == SWITCH && sOn[s] && !sSeal[s]
#if FIX_HELD
            && htag >= sSwV[s]                         /* proposed C5 */
#endif
           ) -> P_HELD : P_REFUSE)
  fi
}

inline PLACE(s, p) {
  hm = ID(p, hs); hw = v[s];
  DECIDE(s);
  if
  :: FENCE && htag < fence[PL(s,p)] ->               /* the refusal fence */
     if :: hd != P_REFUSE -> COUNT(nFence) :: else fi;
     hd = P_REFUSE
  :: else ->
     if :: FENCE && hd == P_REFUSE -> fence[PL(s,p)] = hw :: else fi
  fi;
  if
  :: hd == P_QUEUE -> Q[s]!hm; inQ[s] = inQ[s] | MBIT(hm)
  :: hd == P_HOLD  -> HOLD[s]!hm
  :: hd == P_HELD  -> HELD[s]!hm
  :: hd == P_POST  -> POST[s]!hm
  :: hd == P_REFUSE
  fi;
  rep[PL(s,p)]!hs,(hd != P_REFUSE),hw;
  printf("%c(v%d): P%d.m%d tag v%d -> %d (0 queue 1 hold 2 held 3 post 4 refuse)\n",
         SNAME(s), hw, p, hs, htag, hd)
}

/* a publish from producer p: C2 makes the link wait until the server reached its tag */
inline RECV_PUB(s, p) {
  pub[PL(s,p)]?<hs,htag>;
  if
  :: FIX_CATCHUP && htag > v[s] -> wt[PL(s,p)] = htag     /* WAIT */
  :: else -> pub[PL(s,p)]?hs,htag; wt[PL(s,p)] = 0; PLACE(s, p)
  fi
}

/* ------------------------------------------------------------------ transfers */
inline VERDICT(s) {                               /* Participant.acceptTransfer */
  if
  :: !sOn[s] || sHe[s] != hhe -> hd = V_REFUSE
  :: else ->
     if
     :: hdir == FWD -> hd = ((sSrc[s] || sSeal[s]) -> V_REFUSE : ((sPfx[s]) -> V_DUP : V_ACCEPT))
     :: else -> hd = ((!sSrc[s] || sAbV[s] == 0) -> V_REFUSE : ((sRet[s]) -> V_DUP : V_ACCEPT))
     fi
  fi
}

inline ON_STORED(s) {                             /* Participant.onTransferStored */
  if
  :: hdir == FWD -> sPfx[s] = 1
  :: else ->
     assert(!sRet[s]);                            /* (no duplicates modelled) */
     sRet[s] = 1; sSeal[s] = 0;
     if
     :: sBufX[s] -> DISCARD(HOLD[s])              /* the target returned it first */
     :: else -> RELEASE(HOLD[s], s)
     fi;
     RELEASE(RET[s], s); RELEASE(POST[s], s);
     lead!REVERSED,hhe
  fi
}

inline RECV_XFER(s) {
  xctl[s]?<hdir,hhe,htag,hn>;
  if
  :: htag > v[s] -> xwt[s] = htag                                  /* WAIT (C2) */
  :: else ->
     xctl[s]?hdir,hhe,htag,hn; xwt[s] = 0;
     VERDICT(s);
     printf("%c: transfer %d he %d -> verdict %d (0 accept 1 refuse 2 dup)\n",
            SNAME(s), hdir, hhe, hd);
     if
     :: hd == V_ACCEPT ->
        if :: hdir == FWD -> STORE(s, PFX[s]) :: else -> STORE(s, RET[s]) fi;
        ON_STORED(s); xrep[1-s]!hdir,hhe,1
     :: hd == V_DUP -> DROPN(s); xrep[1-s]!hdir,hhe,1
     :: hd == V_REFUSE -> DROPN(s); COUNT(nXref); xrep[1-s]!hdir,hhe,0
     fi
  fi
}

inline ON_XFER_REPLY(s) {                         /* onTransferAcked / onTransferRefused */
  if
  :: hok && sOn[s] && sHe[s] == hhe ->
     if
     :: hdir == FWD ->
        if :: !sRet[s] -> sBufX[s] = 1; lead!DRAINED,hhe    /* report drained */
           :: else                                          /* lost the race with the handback */
        fi
     :: else ->
        if :: !sBufX[s] -> sBufX[s] = 1; DISCARD(PFX[s]); DISCARD(HELD[s]) :: else fi
     fi
  :: else                                         /* refused: keep the buffer */
  fi
}

/* ------------------------------------------------------------------ a queue server */
#define BACKLOG_DONE(s) (sOn[s] && sSrc[s] && ph[v[s]] == SWITCH && !sSeal[s] && empty(Q[s]))

proctype Server(bit s) {
end:
  do
  :: d_step { v[s] < V -> ON_MAP(s) }
  :: d_step { nempty(pub[PL(s,0)]) && v[s] >= wt[PL(s,0)] -> RECV_PUB(s, 0) }
  :: d_step { nempty(pub[PL(s,1)]) && v[s] >= wt[PL(s,1)] -> RECV_PUB(s, 1) }
  :: d_step { nempty(xctl[s]) && v[s] >= xwt[s] -> RECV_XFER(s) }
  :: d_step { xrep[s]?hdir,hhe,hok -> ON_XFER_REPLY(s) }
#if SEAL_FIRST
  /* onBacklogEmpty, C1: seal and take the hold buffer in one step, send it (even empty) */
  :: d_step { BACKLOG_DONE(s) -> sSeal[s] = 1; SEND_XFER(s, FWD, sHe[s]) }
#else
  /* mutation: send the hold buffer, seal in a later step */
  :: d_step { BACKLOG_DONE(s) && !sXf[s] -> sXf[s] = 1; SEND_XFER(s, FWD, sHe[s]) }
  :: d_step { sXf[s] && sOn[s] && !sSeal[s] && ph[v[s]] == SWITCH -> sSeal[s] = 1 }
#endif
  /* the consumer: head of the deliverable queue, delivered and acknowledged */
  :: d_step { Q[s]?hm -> DELIVER(hm, s) }
  od
}

/* ------------------------------------------------------------------ A4 at quiescence */
proctype Checker() {
  byte i;
  timeout ->
  assert(nDone == 2);                          /* every producer finished          */
  for (i : 0 .. 7) {
    assert(!acked[i] || delivCnt[i] == 1)      /* no acknowledged message lost     */
  };
  assert(ph[V] == NONE);                       /* no handover left open            */
  assert(empty(Q[0]) && empty(Q[1]) && BUFFERS_EMPTY(0) && BUFFERS_EMPTY(1));
#ifdef WITNESS
  assert(!(WITNESS))                           /* fails iff WITNESS is reachable   */
#endif
}

init {
  atomic {
    own[0] = 0; ep[0] = 0; ph[0] = NONE;
    run Leader(); run Server(0); run Server(1);
    run Producer(0); run Producer(1); run Checker()
  }
}

#ifdef LIVE
ltl live { <> ALLDELIVERED }
#endif
