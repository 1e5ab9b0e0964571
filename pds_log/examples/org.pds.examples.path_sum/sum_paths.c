#include "pquic.h"

/* Sums the congestion windows of every path. The loop runs nb_paths times: a count fixed when
 * the loop starts, so it terminates, but nothing in the code caps nb_paths, so it has no
 * constant bound. */
protoop_arg_t sum_paths(picoquic_cnx_t *cnx)
{
    uint64_t nb_paths = get_cnx(cnx, AK_CNX_NB_PATHS, 0);
    uint64_t total = 0;
    for (uint64_t i = 0; i < nb_paths; i++) {
        picoquic_path_t *path = (picoquic_path_t *) get_cnx(cnx, AK_CNX_PATH, (uint16_t) i);
        total += get_path(path, AK_PATH_CWIN, 0);
    }
    set_cnx(cnx, AK_CNX_OUTPUT, 0, total);
    return 0;
}
