#include <limits.h>
#include <stdbool.h>
#include <string.h>
#include <sys/types.h>
#include "pquic.h"

/* System headers and per-plugin defines (pds-build.yaml), as real PQUIC pluglets use them.
 * The build fails without the defines, so a rebuild that ignored them could not pass. */
#if !defined(DISABLE_PROTOOP_PRINTF) || !defined(PROGRESS_DIVISOR)
#error "build with the defines of pds-build.yaml"
#endif

protoop_arg_t record_progress(picoquic_cnx_t *cnx)
{
    picoquic_path_t *path = (picoquic_path_t *) get_cnx(cnx, AK_CNX_INPUT, 0);
    uint64_t srtt = get_path(path, AK_PATH_SMOOTHED_RTT, 0);
    bool moving = srtt > 0 && srtt < UINT64_MAX / PROGRESS_DIVISOR;
    if (moving)
        set_cnx(cnx, AK_CNX_LATEST_PROGRESS_TIME, 0, picoquic_current_time());
    return (ssize_t) 0;
}
