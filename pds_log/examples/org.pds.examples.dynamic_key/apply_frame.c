#include "pquic.h"

/* Takes the field to write from the frame itself: the key is not a constant, so no spec can
 * say what this pluglet writes. */
protoop_arg_t apply_frame(picoquic_cnx_t *cnx)
{
    int key = (int) get_cnx(cnx, AK_CNX_INPUT, 0);
    protoop_arg_t value = get_cnx(cnx, AK_CNX_INPUT, 1);
    set_cnx(cnx, key, 0, value);
    return 0;
}
