#include "xbgp.h"

/* Import filter: give a route without MULTI_EXIT_DISC a MED of 42 (add_attr writes the route
 * from a buffer in the pluglet's memory: it needs the write and usr_ptr permissions). */
uint64_t set_med(void)
{
    uint8_t med[4] = {0, 0, 0, 42};
    if (get_attr_from_code(ATTR_MED) == 0)
        add_attr(ATTR_MED, ATTR_FLAG_OPTIONAL, 4, med);
    return PLUGIN_FILTER_ACCEPT;
}
