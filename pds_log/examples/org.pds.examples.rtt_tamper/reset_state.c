#include "pquic.h"

/* An RTT update has no business changing the connection state: update_rtt may not write
 * cnx.state, so the side-effect check refuses this pluglet. */
protoop_arg_t reset_state(picoquic_cnx_t *cnx)
{
    picoquic_path_t *path = (picoquic_path_t *) get_cnx(cnx, AK_CNX_INPUT, 0);
    if (get_path(path, AK_PATH_SMOOTHED_RTT, 0) > 1000000)
        set_cnx(cnx, AK_CNX_STATE, 0, 0);
    return 0;
}
