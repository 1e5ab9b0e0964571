#include "pquic.h"

/* A non-inlined static function: clang emits a BPF-to-BPF call with no relocation, which the
 * PQUIC VM would take for a call to helper number 2 (or whatever the offset is). */
static __attribute__((noinline)) uint64_t ewma(uint64_t old, uint64_t sample)
{
    return (7 * old + sample) / 8;
}

protoop_arg_t smooth(picoquic_cnx_t *cnx)
{
    picoquic_path_t *path = (picoquic_path_t *) get_cnx(cnx, AK_CNX_INPUT, 0);
    uint64_t srtt = get_path(path, AK_PATH_SMOOTHED_RTT, 0);
    uint64_t sample = get_cnx(cnx, AK_CNX_INPUT, 1);
    set_path(path, AK_PATH_SMOOTHED_RTT, 0, ewma(srtt, sample));
    return 0;
}
