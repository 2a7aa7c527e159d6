package ticket

import "errors"

// ErrInvalid reports a ticket file or journal record that does not follow
// the format. Errors returned by Parse and ParseSale wrap it, with the
// problem named in the message.
var ErrInvalid = errors.New("invalid")

// ErrSoldOut reports a buy asking for more tickets than are left.
var ErrSoldOut = errors.New("sold out")

// ErrQuantity reports a buy quantity below 1.
var ErrQuantity = errors.New("quantity must be at least 1")
