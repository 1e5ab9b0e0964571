#include "pquic.h"

/* Writes 600 bytes past a local array: above the frame pointer, outside the 512-byte stack
 * frame. The address arithmetic goes through an integer, so clang keeps the store. */
protoop_arg_t scribble(picoquic_cnx_t *cnx)
{
    volatile uint64_t local[4];
    local[0] = get_cnx(cnx, AK_CNX_STATE, 0);
    uint64_t addr = (uint64_t) &local[0];
    addr += 600;
    *(volatile uint64_t *) addr = 7;
    return local[0];
}
