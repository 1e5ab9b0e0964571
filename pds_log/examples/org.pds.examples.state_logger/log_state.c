#include "pquic.h"

/* Remember every connection state change in the plugin's private connection metadata
 * (slot 0 = the latest state, slot 1 = how many changes), where the plugin's other pluglets
 * can read them. */
protoop_arg_t log_state(picoquic_cnx_t *cnx)
{
    protoop_arg_t state = get_cnx(cnx, AK_CNX_STATE, 0);
    set_cnx_metadata(cnx, 0, state);
    set_cnx_metadata(cnx, 1, get_cnx_metadata(cnx, 1) + 1);
    return 0;
}
