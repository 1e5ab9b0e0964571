#include "pquic.h"

/* Counts the SACK ranges of the first path by following the chain of items: the loop ends when
 * it reaches a null item, which nothing in the code guarantees (a cycle in the chain would spin
 * forever), so ScalarEvolution cannot count it. */
protoop_arg_t count_sack_items(picoquic_cnx_t *cnx)
{
    picoquic_path_t *path = (picoquic_path_t *) get_cnx(cnx, AK_CNX_PATH, 0);
    picoquic_packet_context_t *pkt_ctx = (picoquic_packet_context_t *) get_path(path, AK_PATH_PKT_CTX, 0);
    picoquic_sack_item_t *item = (picoquic_sack_item_t *) get_pkt_ctx(pkt_ctx, AK_PKTCTX_FIRST_SACK_ITEM);
    uint64_t items = 0;
    while (item != NULL) {
        items++;
        item = (picoquic_sack_item_t *) get_sack_item(item, AK_SACKITEM_NEXT_SACK);
    }
    set_cnx(cnx, AK_CNX_OUTPUT, 0, items);
    return 0;
}
