package io.plb.core.load;

/**
 * What applying one {@code AppendLoadSamples} entry does to the history, for a store to carry out
 * in the same write as the entry's index: put the new fine bucket; put the coarse bucket it
 * falls in (the previous content of that coarse bucket merged with it); delete every fine bucket
 * starting before {@code deleteFineBelow} and every coarse bucket starting before
 * {@code deleteCoarseBelow} (-1: delete nothing — a store writes a deletion only when the kept
 * window moved); keep {@code next} as the new state.
 */
public record HistoryUpdate(
    HistoryState next,
    LoadBucket fine,
    LoadBucket coarse,
    long deleteFineBelow,
    long deleteCoarseBelow) {}
