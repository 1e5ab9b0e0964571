#include "helpers.h"

/* Calls the buggy helper: the finding in helpers.h is this pluglet's. */
protoop_arg_t record_history(picoquic_cnx_t *cnx)
{
    picoquic_path_t *path = (picoquic_path_t *) get_cnx(cnx, AK_CNX_INPUT, 0);
    return rtt_history(path);
}
