package io.plb.core.keyspace;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.charset.StandardCharsets;
import java.util.Random;
import net.openhft.hashing.LongHashFunction;
import org.junit.jupiter.api.Test;

/** KeyHash is XXH64 with seed 0; checked against published vectors and the OpenHFT reference. */
class KeyHashTest {
  private static final LongHashFunction REF = LongHashFunction.xx(0);
  private static final long SEED = 0x5EED_0001L;

  private static byte[] utf8(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  @Test
  void publishedVectors() {
    assertEquals(0xEF46DB3751D8E999L, KeyHash.hash(new byte[0]));
    assertEquals(0xEF46DB3751D8E999L, KeyHash.hash(""));
    assertEquals(0xD24EC4F1A98C6E5BL, KeyHash.hash("a"));
    assertEquals(0x44BC2CF5AD770999L, KeyHash.hash("abc"));
    // python-xxhash's documented example
    assertEquals(0xFBCEA83C8A378BF1L, KeyHash.hash("Nobody inspects the spammish repetition"));
    assertEquals(0x0B242D361FDA71BCL, KeyHash.hash("The quick brown fox jumps over the lazy dog"));
  }

  @Test
  void vectorsAgreeWithReferenceLibrary() {
    String[] texts = {
      "", "a", "abc", "message digest", "0123456789abcdef0123456789abcdef",
      "0123456789abcdef0123456789abcdef0", "order-42", "customer/123/orders", "ключ", "鍵🔑"
    };
    for (String t : texts) {
      assertEquals(REF.hashBytes(utf8(t)), KeyHash.hash(t), "key '" + t + "'");
      assertEquals(REF.hashBytes(utf8(t)), KeyHash.hash(utf8(t)), "key '" + t + "' as bytes");
    }
  }

  @Test
  void stringHashIsHashOfUtf8Bytes() {
    String key = "naïve-ключ-鍵🔑";
    assertEquals(KeyHash.hash(utf8(key)), KeyHash.hash(key));
  }

  @Test
  void randomInputsOfEveryLengthUpTo200() {
    Random rnd = new Random(SEED);
    for (int len = 0; len <= 200; len++) {
      for (int rep = 0; rep < 8; rep++) {
        byte[] data = new byte[len];
        rnd.nextBytes(data);
        assertEquals(REF.hashBytes(data), KeyHash.hash(data),
            "seed " + SEED + " length " + len + " rep " + rep);
      }
    }
  }

  @Test
  void allZeroAndAllOnesInputs() {
    for (int len = 0; len <= 100; len++) {
      byte[] zeros = new byte[len];
      byte[] ones = new byte[len];
      java.util.Arrays.fill(ones, (byte) 0xFF);
      assertEquals(REF.hashBytes(zeros), KeyHash.hash(zeros), "zeros length " + len);
      assertEquals(REF.hashBytes(ones), KeyHash.hash(ones), "0xFF length " + len);
    }
  }

  @Test
  void longInputs() {
    Random rnd = new Random(SEED + 1);
    int[] lengths = {255, 256, 257, 1023, 1024, 1025, 4096, 4097, 65_535, 65_536, 1 << 20};
    for (int len : lengths) {
      byte[] data = new byte[len];
      rnd.nextBytes(data);
      assertEquals(REF.hashBytes(data), KeyHash.hash(data), "seed " + (SEED + 1) + " length " + len);
    }
  }

  @Test
  void xxh64WithOffsetsAndSeeds() {
    Random rnd = new Random(SEED + 2);
    byte[] buf = new byte[600];
    rnd.nextBytes(buf);
    long[] seeds = {0L, 1L, -1L, 0x9E3779B97F4A7C15L, Long.MIN_VALUE};
    for (long seed : seeds) {
      LongHashFunction ref = LongHashFunction.xx(seed);
      for (int i = 0; i < 2000; i++) {
        int off = rnd.nextInt(buf.length + 1);
        int len = rnd.nextInt(buf.length - off + 1);
        assertEquals(ref.hashBytes(buf, off, len), KeyHash.xxh64(buf, off, len, seed),
            "seed " + (SEED + 2) + " xxh seed " + seed + " off " + off + " len " + len);
      }
      // every offset with every short length, so every unaligned read is covered
      for (int off = 0; off < 16; off++) {
        for (int len = 0; len <= 70; len++) {
          assertEquals(ref.hashBytes(buf, off, len), KeyHash.xxh64(buf, off, len, seed),
              "xxh seed " + seed + " off " + off + " len " + len);
        }
      }
    }
  }

  @Test
  void xxh64OfWholeArrayWithSeedZeroIsHash() {
    byte[] data = utf8("some ordering key");
    assertEquals(KeyHash.hash(data), KeyHash.xxh64(data, 0, data.length, 0L));
  }

  @Test
  void hashDoesNotDependOnBytesOutsideTheSlice() {
    byte[] a = utf8("xxKEYyy");
    byte[] b = utf8("zzKEYww");
    assertEquals(KeyHash.xxh64(a, 2, 3, 0L), KeyHash.xxh64(b, 2, 3, 0L));
    assertEquals(KeyHash.hash("KEY"), KeyHash.xxh64(a, 2, 3, 0L));
  }

  @Test
  void readingPastTheArrayFails() {
    byte[] data = new byte[40];
    assertThrows(IndexOutOfBoundsException.class, () -> KeyHash.xxh64(data, 10, 40, 0L));
  }
}
