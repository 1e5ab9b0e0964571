/* Helpers shared by the helper_bug and helper_unused examples (the same bytes in both), the
 * way PQUIC's plugins share plugins/helpers.h: most pluglets use some of them, none all. */
#ifndef PDS_EXAMPLE_HELPERS_H
#define PDS_EXAMPLE_HELPERS_H

#include "pquic.h"

/* Fine: the smaller of two values. */
static inline uint64_t smaller(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* Buggy: keeps the last four RTT samples but writes a fifth, one past the end (cppcheck:
 * arrayIndexOutOfBounds). Only what calls it can go wrong. */
static inline uint64_t rtt_history(picoquic_path_t *path)
{
    uint64_t samples[4];
    int i;
    for (i = 0; i < 4; i++)
        samples[i] = 0;
    samples[4] = get_path(path, AK_PATH_SMOOTHED_RTT, 0);
    return samples[0];
}

#endif
