// The console's pages, in menu order. A new page is one file in this folder that calls registerPage(), and one line here.
import './overview.js';
import './terminals.js';
import './batches.js';
import './money.js';
import './statement.js';
import './alerts.js';
import './registry.js';
import './users.js';
import './vouchers.js';
import './wallet.js';
