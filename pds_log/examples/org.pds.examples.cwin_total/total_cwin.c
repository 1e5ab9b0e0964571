#include "pquic.h"

#define MAX_PATHS 100

/* Sum the congestion windows of all paths (at most MAX_PATHS) and report it as the output.
 * The loop has a constant bound that LLVM's ScalarEvolution proves. */
protoop_arg_t total_cwin(picoquic_cnx_t *cnx)
{
    uint64_t nb_paths = get_cnx(cnx, AK_CNX_NB_PATHS, 0);
    uint64_t total = 0;
    for (int i = 0; i < MAX_PATHS; i++) {
        if ((uint64_t) i >= nb_paths)
            break;
        picoquic_path_t *path = (picoquic_path_t *) get_cnx(cnx, AK_CNX_PATH, i);
        total += get_path(path, AK_PATH_CWIN, 0);
    }
    set_cnx(cnx, AK_CNX_OUTPUT, 0, total);
    return 0;
}
