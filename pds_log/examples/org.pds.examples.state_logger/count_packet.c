#include "pquic.h"

/* Mark progress whenever a packet is received. */
protoop_arg_t count_packet(picoquic_cnx_t *cnx)
{
    set_cnx(cnx, AK_CNX_LATEST_PROGRESS_TIME, 0, picoquic_current_time());
    return 0;
}
