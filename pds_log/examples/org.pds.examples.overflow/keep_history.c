#include "pquic.h"

/* Keeps the last states in a 4-entry array but writes entry 4: one past the end. */
protoop_arg_t keep_history(picoquic_cnx_t *cnx)
{
    protoop_arg_t history[4];
    int i;
    for (i = 0; i < 4; i++)
        history[i] = 0;
    history[4] = get_cnx(cnx, AK_CNX_STATE, 0);
    return history[0];
}
