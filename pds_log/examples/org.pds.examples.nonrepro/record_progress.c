#include "pquic.h"

/* After PQUIC updates the RTT estimate of a path, record that the connection made progress.
 * Loop-free, writes only cnx.latest_progress_time, which update_rtt may write. */
protoop_arg_t record_progress(picoquic_cnx_t *cnx)
{
    picoquic_path_t *path = (picoquic_path_t *) get_cnx(cnx, AK_CNX_INPUT, 0);
    uint64_t srtt = get_path(path, AK_PATH_SMOOTHED_RTT, 0);
    if (srtt > 0)
        set_cnx(cnx, AK_CNX_LATEST_PROGRESS_TIME, 0, picoquic_current_time());
    return 0;
}
