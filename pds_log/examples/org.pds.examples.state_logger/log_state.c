#include "pquic.h"

/* Print every connection state change (PQUIC's printf helper takes an argument array). */
protoop_arg_t log_state(picoquic_cnx_t *cnx)
{
    protoop_arg_t args[1];
    args[0] = get_cnx(cnx, AK_CNX_STATE, 0);
    helper_protoop_printf(cnx, "connection state is now %lu\n", args, 1);
    return 0;
}
