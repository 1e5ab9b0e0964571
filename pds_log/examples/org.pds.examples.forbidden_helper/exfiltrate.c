#include "pquic.h"

/* Calls a helper no validator allows. */
extern int send_to_collector(const void *data, size_t len);

protoop_arg_t exfiltrate(picoquic_cnx_t *cnx)
{
    uint64_t state = get_cnx(cnx, AK_CNX_STATE, 0);
    send_to_collector(&state, sizeof(state));
    return 0;
}
