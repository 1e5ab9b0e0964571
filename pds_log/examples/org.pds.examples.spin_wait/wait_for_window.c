#include "pquic.h"

/* Busy-waits until bytes in transit drop below the congestion window: nothing bounds the
 * loop, so the pluglet could stall the connection forever. */
protoop_arg_t wait_for_window(picoquic_cnx_t *cnx)
{
    picoquic_path_t *path = (picoquic_path_t *) get_cnx(cnx, AK_CNX_PATH, 0);
    uint64_t spins = 0;
    while (get_path(path, AK_PATH_BYTES_IN_TRANSIT, 0) >= get_path(path, AK_PATH_CWIN, 0))
        spins++;
    set_cnx(cnx, AK_CNX_OUTPUT, 0, spins);
    return 0;
}
