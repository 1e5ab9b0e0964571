#include "helpers.h"

/* Uses only the fine helper. */
protoop_arg_t cap_state(picoquic_cnx_t *cnx)
{
    return smaller(get_cnx(cnx, AK_CNX_STATE, 0), 8);
}
