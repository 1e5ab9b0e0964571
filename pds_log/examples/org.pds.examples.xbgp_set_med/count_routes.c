#include "xbgp.h"

/* pre and post of the decision process: look, then let the host go on (needs read only). */
uint64_t count_routes(void)
{
    return get_attr_from_code(ATTR_MED) != 0;
}
