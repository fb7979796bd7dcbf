/**
 * One error class for the whole project. Every failure a user can meet has a
 * stable numeric code (grouped by area), a stable string name a test can assert
 * on, and an operator message in English and Chinese that the display can show.
 * Pure: no I/O.
 */

export type Locale = 'en' | 'zh';

interface CodeInfo {
  readonly code: number;
  readonly en: string;
  readonly zh: string;
  /** The operator can simply try again (re-insert, re-swipe) */
  readonly recoverable: boolean;
}

function info(code: number, en: string, zh: string, recoverable = false): CodeInfo {
  return { code, en, zh, recoverable };
}

/**
 * 1xxx card refusals (shown to the operator at a swipe)
 * 2xxx card and applet protocol
 * 3xxx issuing station
 * 4xxx terminal state and storage
 * 5xxx reader and transport
 * 6xxx sync and server
 * 7xxx formats: bytes or JSON a codec could not read (CodecError, with the path of the bad field)
 * 8xxx isolation gateway (refusals at the hospital/payment boundary)
 * 9xxx usage and configuration
 */
export const ErrorCodes = {
  // 1xxx: refusals of a swipe
  UNKNOWN_CARD: info(1001, 'Unknown card: not a tallystick card', '未知卡片：非本系统卡', true),
  FORGED: info(1002, 'Card refused: signature invalid (forged or altered)', '拒绝：签名无效（伪造或被篡改）'),
  WRONG_TIER: info(1003, 'Card refused: this card type cannot be used here', '拒绝：此类卡不能在此使用'),
  WRONG_CLINIC: info(1004, 'Card refused: card belongs to another clinic', '拒绝：卡片属于其他医疗机构'),
  EXPIRED: info(1005, 'Card refused: card expired or not yet valid', '拒绝：卡片已过期或尚未生效'),
  REVOKED: info(1006, 'Card refused: card revoked', '拒绝：卡片已被注销'),
  OUT_OF_RANGE: info(1007, 'Card refused: serial number outside its batch', '拒绝：卡号超出批次范围'),
  ALREADY_USED: info(1008, 'Card refused: card already used', '拒绝：卡片已使用'),
  BATCH_NOT_LOADED: info(1009, 'Card refused: its batch is not loaded on this terminal', '拒绝：本机未装载该批次'),
  BATCH_EXHAUSTED: info(1010, 'Card refused: its batch is used up; load a new batch card', '拒绝：该批次已用完，请装载新批次卡'),
  CARD_REMOVED: info(1011, 'Card removed too early: insert it again', '卡片拔出过早，请重新插卡', true),
  NOT_PROVISIONED: info(1012, 'Terminal not provisioned: factory initialisation needed', '终端未初始化，需出厂初始化'),
  BATCH_ALREADY_LOADED: info(1013, 'Batch already loaded on this terminal', '该批次已装载'),
  CARD_BLANK: info(1014, 'Blank card: not personalised', '空白卡：未个人化', true),
  CLONED_CARD: info(1015, 'Card refused: copied card (the chip failed its authentication)', '拒绝：复制卡（芯片认证失败）'),
  VERSION1_CARD: info(1016, 'Card refused: old version 1 card, not accepted on this terminal', '拒绝：旧版（第1版）卡片，本终端不接受'),
  // 1101-1149: service vouchers scanned as QR codes (firmware-protocol/voucher-format.md)
  VOUCHER_MALFORMED: info(1101, 'Voucher refused: not a tallystick voucher QR code', '拒绝：不是本系统的服务券二维码', true),
  VOUCHER_FORGED: info(1102, 'Voucher refused: signature invalid (forged or altered)', '拒绝：服务券签名无效（伪造或被篡改）'),
  VOUCHER_UNKNOWN_KEY: info(1103, 'Voucher refused: signed by a key this terminal does not trust', '拒绝：服务券签名密钥不受本终端信任'),
  VOUCHER_EXPIRED: info(1104, 'Voucher refused: expired or not yet valid', '拒绝：服务券已过期或尚未生效'),
  VOUCHER_VOIDED: info(1105, 'Voucher refused: voided by the back office', '拒绝：服务券已被后台作废'),
  VOUCHER_REVOKED: info(1106, 'Voucher refused: revoked (on the trust list)', '拒绝：服务券已被吊销（在信任列表中）'),
  VOUCHER_WRITTEN_OFF: info(1107, 'Voucher refused: already written off', '拒绝：服务券已核销'),
  VOUCHER_WRONG_CLINIC: info(1108, 'Voucher refused: valid at another clinic or device', '拒绝：服务券仅限其他机构或设备使用'),
  VOUCHER_NOT_BOOKED: info(1109, 'Voucher refused: no booking for this time', '拒绝：服务券未预约此时段'),
  TRUST_LIST_STALE: info(1110, 'Vouchers not accepted: trust list too old, connect the terminal', '暂停收券：信任列表过旧，请连接网络更新'),
  TRUST_LIST_MISSING: info(1111, 'Vouchers not accepted: no trust list installed', '暂停收券：未安装信任列表'),
  TRUST_LIST_INVALID: info(1112, 'Trust list refused: not signed by a key the investor root certifies', '信任列表被拒绝：签名密钥未经投资方根密钥认证'),
  SCAN_NOT_QR: info(1113, 'Scan refused: not a QR code (wrong symbology)', '扫码被拒绝：不是二维码', true),
  // where the clinic checks identity (voucher.requireIdentity): the holder's personal QR code after the voucher (wallet-qr.md §5)
  VOUCHER_IDENTITY_NEEDED: info(1114, "Voucher checked: now scan the holder's personal QR code", '服务券已校验：请扫描持券人个人二维码', true),
  WALLET_QR_WRONG_PERSON: info(1115, "Voucher refused: the personal QR code is not its holder's", '拒绝：个人二维码不是持券人本人的'),
  VOUCHER_HOLDER_UNNAMED: info(1116, 'Voucher refused: no holder named; this clinic checks identity', '拒绝：服务券未绑定持券人，本机构须核验身份'),
  WALLET_QR_NO_VOUCHER: info(1117, 'Scan the voucher first, then the personal QR code', '请先扫描服务券，再扫描个人二维码', true),
  // 1151-1199: insurance payments refused at the terminal (firmware-protocol/settlement-voucher.md)
  INSURANCE_OFFLINE: info(1151, 'Insurance payment unavailable: the terminal is offline (it needs the server link)', '医保支付不可用：终端离线（需要连接服务器）', true),
  SETTLEMENT_VOUCHER_FORGED: info(1152, 'Settlement voucher refused: not signed by a server key the investor root certifies', '结算凭证被拒绝：签名密钥未经投资方根密钥认证'),
  SETTLEMENT_VOUCHER_OTHER_TERMINAL: info(1153, 'Settlement voucher refused: it is for another terminal', '结算凭证被拒绝：属于其他终端'),
  SETTLEMENT_VOUCHER_EXPIRED: info(1154, 'Settlement voucher refused: expired', '结算凭证被拒绝：已过期'),
  SETTLEMENT_VOUCHER_REPLAYED: info(1155, 'Settlement voucher refused: already used on this terminal', '结算凭证被拒绝：已在本终端使用'),
  SETTLEMENT_VOUCHER_WRONG_ORDER: info(1156, 'Settlement voucher refused: it does not pay the order shown', '结算凭证被拒绝：与当前订单不符'),
  INSURANCE_REFUSED_BY_PATIENT: info(1157, 'Insurance payment cancelled: the patient refused on the phone', '医保支付已取消：患者在手机上拒绝'),
  INSURANCE_CODE_EXPIRED: info(1158, 'Insurance payment expired: the QR code was not used in time', '医保支付已过期：二维码未在时限内使用', true),
  INSURANCE_FAILED: info(1159, 'Insurance payment failed: not charged', '医保支付失败：未扣费', true),
  INSURANCE_BUSY: info(1160, 'An insurance payment is already waiting on this terminal', '本终端已有一笔医保支付在等待中', true),
  INSURANCE_NO_DAEMON: info(1161, 'Insurance payment not started: no terminal daemon answers (start tally terminal run)', '医保支付未发起：终端守护进程未运行（请启动 tally terminal run）', true),

  // 2xxx: card and applet protocol
  PIN_WRONG: info(2001, 'Wrong PIN', 'PIN 错误', true),
  PIN_BLOCKED: info(2002, 'PIN blocked after too many wrong tries', 'PIN 已锁定（错误次数过多）'),
  PIN_REQUIRED: info(2003, 'PIN not verified', '未验证 PIN', true),
  CARD_STATE: info(2004, 'Card is not in the right state for this command', '卡片状态不允许此操作'),
  CARD_ALREADY_WRITTEN: info(2005, 'Card field already written (write-once)', '卡片字段已写入（仅可写一次）'),
  QUOTA_EXHAUSTED: info(2006, 'Card quota exhausted', '卡片配额已用完'),
  APPLET_NOT_FOUND: info(2007, 'Card has no tallystick applet', '卡片无本系统应用', true),
  APDU_REJECTED: info(2008, 'Card rejected the command', '卡片拒绝命令'),
  CARD_MEMORY: info(2009, 'Card memory failure', '卡片存储故障'),
  MALFORMED_RECORD: info(2010, 'Card data malformed', '卡片数据格式错误'),
  MALFORMED_APDU: info(2011, 'Malformed APDU', 'APDU 格式错误'),

  // 3xxx: issuing station
  ISSUE_WRONG_CARD: info(3001, 'Wrong card in the slot for this step', '卡槽中的卡片不对', true),
  ISSUE_QUOTA: info(3002, 'Issuing quota exhausted', '发卡配额已用完'),
  ISSUE_NOT_BLANK: info(3003, 'Target card is not blank', '目标卡不是空白卡', true),
  ISSUE_REGISTRY: info(3004, 'Issuing registry error', '发卡登记库错误'),

  // 4xxx: terminal state and storage
  STORAGE_FAULT: info(4001, 'Out of service: cannot record (storage fault)', '暂停服务：无法记录（存储故障）'),
  ALREADY_PROVISIONED: info(4002, 'Terminal already provisioned', '终端已初始化'),
  LEDGER_BROKEN: info(4003, 'Ledger verification failed', '账本校验失败'),
  ROOT_MISMATCH: info(4004, 'Mother card does not match the expected investor root', '母卡与预期投资方根密钥不符'),
  DEVICE_FAULT: info(4005, 'Device failed to start: use released, not charged', '设备启动失败：本次已释放，不扣费'),
  BUSY: info(4006, 'Terminal busy: wait for the current use to finish', '终端忙，请等待当前使用结束', true),
  // rollback witnesses (firmware-protocol/ledger-format.md, serial-protocol.md §6.5)
  LEDGER_ROLLBACK: info(4030, 'Out of service: ledger older than recorded (rollback)', '暂停服务：账本比已记录的旧（回滚）'),
  // ledger audits (firmware-protocol/ledger-format.md, audit-bundle.md): 4060-4079
  DATABASE_UNREADABLE: info(4060, 'Ledger database damaged: it cannot be read to the end', '账本数据库已损坏：无法完整读取'),
  BAD_AUDIT_BUNDLE: info(4061, 'Audit bundle unreadable: not a tallystick audit bundle', '审计包无法读取：不是本系统的审计包'),
  AUDIT_BUNDLE_INVALID: info(4062, 'Audit bundle does not verify against the investor root', '审计包未通过投资方根密钥校验'),
  AUDIT_HALVES_DIFFER: info(4063, "The terminal's ledger and the server's differ", '终端账本与服务器账本不一致'),
  LEDGER_TRUNCATED: info(4031, 'Ledger truncated: it no longer contains the server\'s signed checkpoint', '账本被截断：不再包含服务器签名的检查点'),
  // the clock's high-water mark (firmware-protocol/ledger-format.md §6)
  CLOCK_RESET_REFUSED: info(4040, 'Clock reset refused: its proof is not signed for this terminal\'s ledger', '时钟重置被拒绝：其证明不是为本终端账本签署的'),
  SERVER_TIME_BEHIND: info(4046, "Server time not taken: it is behind the time this terminal has already recorded", '未采用服务器时间：早于本终端已记录的时间'),
  CLOCK_AHEAD: info(4041, 'Clock not trusted: it jumped far ahead of the last trusted time (not taken)', '时钟不可信：时间大幅超前于上次可信时间（未采用）'),
  // storage faults by their cause (storageErrorOf: SQLite result codes and errno codes)
  STORAGE_FULL: info(4042, 'Out of service: the disk is full (cannot record)', '暂停服务：磁盘已满（无法记录）'),
  STORAGE_READ_ONLY: info(4043, 'Out of service: the data folder is read-only (cannot record)', '暂停服务：数据目录为只读（无法记录）'),
  DATABASE_CORRUPT: info(4044, 'Out of service: the database file is damaged (restore it from a backup)', '暂停服务：数据库文件已损坏（请从备份恢复）'),
  DATABASE_CANTOPEN: info(4045, 'Out of service: the database cannot be opened (missing, or its folder not writable)', '暂停服务：无法打开数据库（文件缺失或目录不可写）'),
  BOARD_WITNESS_MISSING: info(4032, 'Out of service: relay board firmware too old (no witness)', '暂停服务：继电器板固件过旧（无见证）'),

  // 5xxx: reader and transport
  READER_UNAVAILABLE: info(5001, 'Card reader not available', '读卡器不可用', true),
  READER_TIMEOUT: info(5002, 'Card reader did not answer', '读卡器无响应', true),
  TRANSPORT_CLOSED: info(5003, 'Reader connection closed', '读卡器连接已关闭', true),
  FRAME_REJECTED: info(5004, 'Reader rejected the frame', '读卡器拒绝数据帧', true),
  READER_IN_USE: info(5005, 'Card reader in use by another program', '读卡器被其他程序占用', true),
  // 51xx: the GSM modem of the SMS path (firmware-protocol/sms-report.md)
  MODEM_UNAVAILABLE: info(5100, 'GSM modem not available (unplugged or not answering)', 'GSM 调制解调器不可用（未连接或无响应）', true),
  MODEM_TIMEOUT: info(5101, 'GSM modem did not answer in time', 'GSM 调制解调器响应超时', true),
  MODEM_ERROR: info(5102, 'GSM modem answered ERROR', 'GSM 调制解调器返回错误', true),
  MODEM_SMS_ERROR: info(5103, 'GSM modem could not send or read the SMS (+CMS ERROR)', 'GSM 调制解调器无法收发短信（+CMS ERROR）', true),
  MODEM_SIM_NOT_READY: info(5104, 'SIM card not ready (missing or PIN needed)', 'SIM 卡未就绪（未插卡或需 PIN）', true),
  MODEM_NO_NETWORK: info(5105, 'No mobile network: SMS cannot be sent now', '无移动网络：暂时无法发送短信', true),
  BAD_SMS_PDU: info(5106, 'Malformed SMS (PDU)', '短信格式错误（PDU）'),
  SMS_BUDGET_EXHAUSTED: info(5107, 'SMS report not sent: the daily SMS budget is used up', '短信报告未发送：今日短信额度已用完', true),
  BOARD_HEAD_REFUSED: info(5030, 'Relay board refused to run the device: it has seen a later ledger', '继电器板拒绝启动设备：它见过更新的账本'),

  // 6xxx: sync and server
  SYNC_REJECTED: info(6001, 'Server refused the message', '服务器拒绝消息'),
  BAD_MESSAGE: info(6002, 'Malformed message', '消息格式错误'),
  // the server's signed statement (firmware-protocol/audit-bundle.md): 6200-6219
  STATEMENT_INVALID: info(6200, "Server statement refused: not signed by a server key the investor root certifies", '服务器声明被拒绝：签名密钥未经投资方根密钥认证'),
  STATEMENT_MISMATCH: info(6201, "Server statement does not list the entries its bundle holds", '服务器声明与其审计包中的条目不符'),
  BAD_CHECKPOINT: info(6030, 'Server checkpoint refused: not signed by a key the investor root certifies', '服务器检查点被拒绝：签名密钥未经投资方根密钥认证'),
  REGISTRY_IMPORT_REFUSED: info(6003, 'Registry export refused: it does not verify against the investor root', '登记导出被拒绝：无法通过投资方根密钥校验'),
  // 64xx: SMS reports and commands (firmware-protocol/sms-report.md)
  BAD_SMS_REPORT: info(6400, 'Malformed SMS report', '短信报告格式错误'),
  SMS_REPORT_FORGED: info(6401, 'SMS report refused: signature invalid (forged or altered)', '短信报告被拒绝：签名无效（伪造或被篡改）'),
  SMS_REPORT_REPLAYED: info(6402, 'SMS report refused: already received (replayed)', '短信报告被拒绝：已接收过（重放）'),
  SMS_UNKNOWN_TERMINAL: info(6403, 'SMS report refused: no known terminal has this id', '短信报告被拒绝：无此终端'),
  SMS_HEAD_CONTRADICTED: info(6404, 'Ledger contradicts the head the terminal reported by SMS (rollback or fork)', '账本与终端短信报告的链头矛盾（回滚或分叉）'),
  BAD_SMS_COMMAND: info(6405, 'Malformed SMS command', '短信指令格式错误'),
  SMS_COMMAND_REFUSED: info(6406, 'SMS command refused: not signed by the server, not for this terminal, or replayed', '短信指令被拒绝：非服务器签名、非本终端或重放'),
  SMS_NOT_A_REPORT: info(6407, 'SMS refused: not a tallystick message', '短信被拒绝：不是本系统消息'),
  // 6300-6349: the voucher back office (seed 004)
  VOUCHER_NOT_ISSUED: info(6301, 'Voucher refused: the back office has not issued it', '拒绝：后台未发放此服务券'),
  VOUCHER_UNKNOWN: info(6302, 'No such voucher in the back office', '后台无此服务券'),
  VOUCHER_NOT_BOOKABLE: info(6303, 'Booking refused: the voucher is not bookable now', '预约被拒绝：此服务券当前不可预约'),
  VOUCHER_SLOT_FULL: info(6304, 'Booking refused: the time slot is full', '预约被拒绝：该时段已约满'),
  VOUCHER_STATE_REFUSED: info(6305, 'Refused: the voucher is not in a state that allows this', '操作被拒绝：服务券当前状态不允许此操作'),
  VOUCHER_KEY_MISSING: info(6306, 'The back office has no voucher key (tally server voucher certify-key)', '后台没有服务券签名密钥（tally server voucher certify-key）'),
  WALLET_QR_REPLAYED: info(6307, 'Personal QR code already used: refresh it on the phone', '个人二维码已使用过：请在手机上刷新'),
  // 61xx: the TLS PKI and enrolment (tally pki, EST)
  PKI_PASSPHRASE: info(6101, 'TLS CA key locked: wrong or missing passphrase', 'TLS CA 私钥无法解锁：口令错误或缺失'),
  PKI_REFUSED: info(6102, 'Certificate request refused', '证书申请被拒绝'),
  CERT_REVOKED: info(6103, 'Certificate revoked: this terminal is retired', '证书已吊销：此终端已停用'),
  ENROL_TOKEN: info(6104, 'Enrolment token invalid, used or expired', '注册令牌无效、已使用或已过期'),
  TLS_CA_NOT_VOUCHED: info(6105, 'TLS CA not certified by the investor root', 'TLS CA 未经投资方根密钥认证'),
  ENROL_FAILED: info(6106, 'Enrolment with the server failed', '向服务器注册证书失败', true),
  // 65xx: the console's users, sessions and permissions (server/access)
  UNAUTHENTICATED: info(6501, 'Not logged in: log in to the console first', '未登录：请先登录控制台', true),
  FORBIDDEN: info(6502, 'Not allowed: your role may not do this', '无权限：您的角色不允许此操作'),
  BAD_CSRF: info(6503, 'Request refused: its CSRF token is missing or wrong; reload the page', '请求被拒绝：CSRF 令牌缺失或错误，请刷新页面', true),
  LOGIN_RATE_LIMITED: info(6504, 'Too many failed logins: wait and try again later', '登录失败次数过多：请稍后再试', true),
  SESSION_EXPIRED: info(6505, 'Session expired: log in again', '会话已过期：请重新登录', true),
  LOGIN_FAILED: info(6506, 'Login failed: wrong user name or password', '登录失败：用户名或密码错误', true),
  WEAK_PASSWORD: info(6507, 'Password refused: at least 12 characters, not the user name', '密码不符合要求：至少 12 个字符，且不能与用户名相同'),
  USER_EXISTS: info(6508, 'User already exists', '用户已存在'),
  LOGIN_TOKEN: info(6510, 'One-time login invalid, used or expired', '一次性登录链接无效、已使用或已过期'),
  UNKNOWN_AGENT: info(6511, 'No such agent in the registry', '登记中无此代理商'),
  UNKNOWN_USER: info(6513, 'No such console user', '无此控制台用户'),
  LAST_SYSADMIN: info(6514, 'Refused: this would leave no enabled system administrator', '操作被拒绝：这将使系统中没有可用的系统管理员'),
  HTTP_NOT_FOUND: info(6517, 'Not found: the server has no such resource', '未找到：服务器无此资源'),
  HTTP_UNAVAILABLE: info(6518, 'The server cannot answer this now (a part it needs is not configured or not available)', '服务器暂时无法处理此请求（所需部分未配置或不可用）', true),
  BAD_ROLE_SCOPE: info(6512, 'A clinic user needs its clinic, an agent user its agent and a patient user its wallet (and no other role either)', '医疗机构用户须指定其机构、代理商用户须指定其代理商、患者用户须指定其钱包（其他角色不可指定）'),
  STATEMENT_CLINIC_UNKNOWN: info(6515, 'No statement: the registry and the ingest know no such clinic', '无法生成结算单：登记和数据接收中均无此医疗机构'),
  DENYLIST_FULL: info(6517, 'Card not revoked: the deny list holds as many cards as a terminal takes', '卡片未注销：黑名单已达终端可接收的上限'),
  STATEMENT_PDF_UNAVAILABLE: info(6516, 'The statement PDF could not be printed: no working Chromium on the server', '无法打印结算单 PDF：服务器上没有可用的 Chromium', true),
  // 6600-6649: insurance payments at the server and its platform (docs/insurance.md)
  INSURANCE_PLATFORM_DOWN: info(6600, 'Insurance platform unreachable', '医保平台无法连接', true),
  INSURANCE_PLATFORM_TIMEOUT: info(6601, 'Insurance platform did not answer in time', '医保平台响应超时', true),
  INSURANCE_PLATFORM_ERROR: info(6602, 'Insurance platform answered an error', '医保平台返回错误', true),
  INSURANCE_NOT_INSURED: info(6603, 'No insured person holds this e-credential', '该医保电子凭证无对应参保人'),
  INSURANCE_NOT_COVERED: info(6604, 'This exam is not covered by the insurance', '该检查项目不在医保报销范围内'),
  INSURANCE_IDEMPOTENCY: info(6605, 'Insurance platform refused: idempotency key reused for another request', '医保平台拒绝：幂等键被用于其他请求'),
  INSURANCE_UNKNOWN_ORDER: info(6606, 'Unknown insurance order or authorisation', '未知的医保订单或授权'),
  INSURANCE_CODE_EXPIRED_SERVER: info(6607, 'Authorisation expired: start the payment again at the terminal', '授权已过期：请在终端重新发起支付'),
  INSURANCE_LINK_TAKEN: info(6609, 'This payment link is already open on another phone', '该支付链接已在另一部手机上打开'),
  INSURANCE_TOKEN_USED: info(6610, 'Authorisation token already used', '授权令牌已使用'),
  INSURANCE_TOKEN_INVALID: info(6611, 'Authorisation token invalid or not for this order', '授权令牌无效或不属于此订单'),
  INSURANCE_STATE: info(6612, 'The insurance order is not in a state that allows this', '医保订单当前状态不允许此操作'),
  INSURANCE_NO_SIGNING_KEY: info(6613, 'Insurance payments need the server signing key (tally server certify-key)', '医保支付需要服务器签名密钥（tally server certify-key）'),
  INSURANCE_PLATFORM_NO_ANSWER: info(6615, 'Insurance platform dropped the connection without answering: the request may have been done (looked up by its idempotency key)', '医保平台未应答即断开连接：请求可能已执行（按幂等键查询）', true),
  INSURANCE_TERMINAL_HTTP_REFUSED: info(6616, 'Refused: terminals pay by insurance over their own authenticated MQTT link, not over HTTP; nothing was changed', '已拒绝：终端须通过其经认证的 MQTT 链路进行医保支付，而非 HTTP；未做任何更改'),
  INSURANCE_SERVICE_ORDER_OTHER_CLINIC: info(6617, 'This paid service order is for another clinic: redeem it at a terminal of the clinic it was booked for', '该已支付服务订单属于其他医疗机构：请在预约的机构终端上核销'),
  INSURANCE_SETTLEMENT_UNRESOLVED: info(6619, 'Insurance settlement unresolved past its age limit: the platform cannot be asked about its idempotency key; check the order with the platform (it stays open and is asked again)', '医保结算超过时限仍未确认：无法按幂等键向医保平台查询；请向平台核实该订单（订单保持未结并将继续查询）'),
  INSURANCE_SETTLEMENT_INTERRUPTED: info(6620, 'Insurance payment failed: the server stopped between the consent and the settlement; nothing was charged', '医保支付失败：服务器在授权与结算之间中断；未扣费', true),
  INSURANCE_SERVICE_ORDER_REDEEMED: info(6618, 'This paid service order was already redeemed at another terminal', '该已支付服务订单已在另一台终端核销'),

  // 7xxx: formats (thrown by the codecs as CodecError, with the path of the bad field)
  BAD_TLV: info(7001, 'Malformed data (TLV)', '数据格式错误（TLV）'),
  BAD_FRAME: info(7002, 'Malformed reader frame', '读卡器数据帧格式错误'),
  BAD_FIRMWARE_PAYLOAD: info(7003, 'Malformed reader message', '读卡器消息格式错误'),
  BAD_LEDGER_ENTRY: info(7004, 'Malformed ledger entry', '账本条目格式错误'),
  BAD_FCI: info(7005, 'Malformed card answer to select', '卡片选择应答格式错误'),
  BAD_REGISTRY_EXPORT: info(7006, 'Malformed registry export', '登记导出文件格式错误'),
  // the personal wallet QR code (firmware-protocol/wallet-qr.md)
  BAD_WALLET_QR: info(7007, 'Not a personal wallet QR code', '不是个人钱包二维码'),
  WALLET_QR_FORGED: info(7008, 'Personal QR code refused: its signature does not verify', '个人二维码被拒绝：签名校验失败'),
  WALLET_QR_EXPIRED: info(7009, 'Personal QR code expired: refresh it on the phone', '个人二维码已过期：请在手机上刷新'),
  WALLET_QR_UNKNOWN_KEY: info(7010, 'Personal QR code refused: signed with a key not trusted here', '个人二维码被拒绝：签名密钥不受信任'),
  BAD_DIODE_FRAME: info(7011, 'Malformed data diode frame', '单向网闸数据帧格式错误'),

  // 8xxx: isolation gateway (every refusal is archived with its code)
  GW_FRAMING: info(8001, 'Gateway refused: broken MLLP framing', '网闸拒绝：MLLP 帧格式错误'),
  GW_OVERSIZED: info(8002, 'Gateway refused: message too large for its type', '网闸拒绝：消息超过该类型的大小上限'),
  GW_MALFORMED: info(8003, 'Gateway refused: message does not parse', '网闸拒绝：消息无法解析'),
  GW_NOT_ALLOWED: info(8004, 'Gateway refused: message type not on the allow list', '网闸拒绝：消息类型不在允许列表中'),
  GW_WRONG_DIRECTION: info(8005, 'Gateway refused: message type not allowed in this direction', '网闸拒绝：该消息类型不允许此方向传输'),
  GW_BAD_FIELD: info(8006, 'Gateway refused: a field is missing or invalid', '网闸拒绝：字段缺失或无效'),
  GW_RATE_LIMITED: info(8007, 'Gateway refused: rate limit for this message type exceeded, send again later', '网闸拒绝：该消息类型超过速率限制，请稍后重发', true),
  GW_BAD_SIGNATURE: info(8008, 'Gateway refused: signature does not verify', '网闸拒绝：签名验证失败'),
  GW_DUPLICATE: info(8009, 'Gateway: message already passed; acknowledged again, not passed twice', '网闸：消息已通过，重复确认，不重复传递', true),
  GW_ENCODING: info(8010, 'Gateway refused: text is not valid UTF-8 or holds control characters', '网闸拒绝：文本不是有效的 UTF-8 或含控制字符'),
  GW_ARCHIVE_FAULT: info(8011, 'Gateway refused: cannot archive the message (storage fault)', '网闸拒绝：无法存档消息（存储故障）', true),
  GW_DEAD_LETTER: info(8012, 'Department delivery given up after its retries: moved to the dead-letter queue', '科室投递重试用尽，已移入死信队列'),
  GW_ARCHIVE_BROKEN: info(8013, 'Gateway archive verification failed', '网闸存档校验失败'),
  BAD_SIGNED_DENYLIST: info(6800, 'Signed deny list refused: malformed (firmware-protocol/gateway-signed.md)', '签名黑名单被拒绝：格式错误'),
  GW_STALE_SIGNED: info(6801, 'Gateway refused: signed message expired or older than the one that passed', '网闸拒绝：签名消息已过期或早于已通过的版本'),
  GW_DIODE_INCOMPLETE: info(8015, 'Diode receiver: a message lost on the one-way link (fragments missing); nothing of it was delivered', '单向网闸接收端：消息在单向链路上丢失（分片缺失），未投递任何部分'),
  GW_DIODE_FRAGMENT: info(8016, 'Diode receiver refused: a fragment contradicts the others of its message', '单向网闸接收端拒绝：分片与同一消息的其他分片不一致'),

  // 9xxx: usage and configuration
  USAGE: info(9001, 'Invalid usage', '用法错误'),
  CONFIG: info(9002, 'Invalid configuration', '配置错误'),
  BAD_INPUT: info(9003, 'Invalid input', '输入无效'),
  CONFIG_UNKNOWN_ENV: info(9010, 'Unknown TALLY_ environment variable: ignored (a typo?)', '未知的 TALLY_ 环境变量：已忽略（拼写错误？）', true),
  // 9020-9049: what is wrong with one setting (each problem a ConfigError lists carries one)
  CONFIG_UNKNOWN_SETTING: info(9020, 'Unknown setting in the configuration (a typo?)', '配置中有未知设置项（拼写错误？）'),
  CONFIG_WRONG_TYPE: info(9021, 'Setting has the wrong type', '设置项类型错误'),
  CONFIG_OUT_OF_RANGE: info(9022, 'Setting out of its range', '设置项超出允许范围'),
  CONFIG_NOT_ALLOWED: info(9023, 'Setting is not one of the allowed values', '设置项不是允许的取值之一'),
  CONFIG_REQUIRED: info(9024, 'Required setting missing', '缺少必需的设置项'),
  CONFIG_FILE_UNREADABLE: info(9025, 'Configuration file cannot be read (missing, or not YAML or JSON)', '无法读取配置文件（不存在，或不是 YAML/JSON）'),
  INTERNAL: info(9999, 'Internal error', '内部错误'),
} as const;

export type ErrorName = keyof typeof ErrorCodes;

const ERRNO_FAULTS: Readonly<Record<string, ErrorName>> = {
  ENOSPC: 'STORAGE_FULL',
  EDQUOT: 'STORAGE_FULL',
  EROFS: 'STORAGE_READ_ONLY',
  EACCES: 'STORAGE_READ_ONLY',
  EPERM: 'STORAGE_READ_ONLY',
  EIO: 'STORAGE_FAULT',
  ENOENT: 'DATABASE_CANTOPEN',
  ENOTDIR: 'DATABASE_CANTOPEN',
};

/**
 * The one mapping of storage failures to codes: a SQLite result code (better-sqlite3's SqliteError.code,
 * extended codes included) or a Node errno code (fs) becomes the TallyError an operator can act on;
 * undefined when `err` is not a storage failure. SQLITE_IOERR_SHMSIZE is SQLite failing to write the
 * pages of its -shm file, which on a full disk is what a reader meets first.
 */
export function storageErrorOf(err: unknown, what = 'storage'): TallyError | undefined {
  if (err instanceof TallyError) return undefined;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return undefined;
  const message = (err as Error).message;
  const make = (name: ErrorName): TallyError => new TallyError(name, `${what}: ${message} (${code})`, { storageCode: code }, { cause: err });
  if (code === 'SQLITE_FULL' || code === 'SQLITE_IOERR_SHMSIZE') return make('STORAGE_FULL');
  if (code.startsWith('SQLITE_READONLY')) return make('STORAGE_READ_ONLY');
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') return make('DATABASE_CORRUPT');
  if (code.startsWith('SQLITE_CANTOPEN')) return make('DATABASE_CANTOPEN');
  if (code.startsWith('SQLITE_IOERR')) return make('STORAGE_FAULT');
  const errno = ERRNO_FAULTS[code];
  return errno ? make(errno) : undefined;
}

/** storageErrorOf for a failure known to come from storage: STORAGE_FAULT when its code says no more */
export function storageFault(err: unknown, what: string): TallyError {
  if (err instanceof TallyError) return err;
  return storageErrorOf(err, what) ?? new TallyError('STORAGE_FAULT', `${what}: ${(err as { code?: string } | null)?.code ?? (err as Error)?.message ?? 'unknown'}`, {}, { cause: err });
}

export class TallyError extends Error {
  override readonly name: string = 'TallyError';
  readonly code: ErrorName;
  readonly numericCode: number;
  readonly context: Readonly<Record<string, unknown>>;
  /** What this case adds to the code's own message ('' when nothing), so a caller showing both says it once */
  readonly detail: string;

  constructor(code: ErrorName, detail?: string, context: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    const base = ErrorCodes[code];
    super(detail ? `${base.en}: ${detail}` : base.en, options);
    this.code = code;
    this.detail = detail ?? '';
    this.numericCode = base.code;
    this.context = context;
  }

  get recoverable(): boolean {
    return ErrorCodes[this.code].recoverable;
  }

  /** The message for the terminal's display or the CLI, in the configured language */
  operatorMessage(locale: Locale = 'en'): string {
    return operatorMessage(this.code, locale);
  }
}

/**
 * What a codec throws: a TallyError whose message is the codec's own detail and whose `path` names the bad
 * field ('' for the input as a whole), so callers report the field without reading the message.
 */
export class CodecError extends TallyError {
  override readonly name: string = 'CodecError';
  readonly path: string;

  constructor(code: ErrorName, detail: string, path = '') {
    super(code, detail, path ? { path } : {});
    this.message = detail;
    this.path = path;
  }
}

/**
 * A refusal with a stable reason string that is stored or answered as it is (a server's rejection log, an HTTP
 * body): a TallyError whose message stays `reason: detail`.
 */
export class ReasonedError<R extends string = string> extends TallyError {
  constructor(
    code: ErrorName,
    readonly reason: R,
    override readonly detail: string,
    context: Record<string, unknown> = {},
  ) {
    super(code, `${reason}: ${detail}`, { reason, ...context });
    this.message = `${reason}: ${detail}`;
  }
}

export function isCodecError(err: unknown, code?: ErrorName): err is CodecError {
  return err instanceof CodecError && (code === undefined || err.code === code);
}

export function operatorMessage(code: ErrorName, locale: Locale = 'en'): string {
  const entry = ErrorCodes[code];
  return locale === 'zh' ? entry.zh : entry.en;
}

export function isTallyError(err: unknown, code?: ErrorName): err is TallyError {
  return err instanceof TallyError && (code === undefined || err.code === code);
}

export function codeOf(err: unknown): ErrorName {
  return err instanceof TallyError ? err.code : 'INTERNAL';
}
