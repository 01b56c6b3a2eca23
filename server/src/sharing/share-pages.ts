/**
 * The HTML a share link's URL (`GET /s/{token}`) answers with when there is nothing to open: a link
 * unknown, expired or revoked, or the phone viewer not built. Plain pages in Vietnamese and English, no
 * script, no patient data, never an error dump; the security headers (http/security-headers.ts: CSP,
 * no referrer, nosniff) come with every HTML response.
 */

export type LinkPageKind = 'unknown' | 'expired' | 'revoked' | 'not-built';

const PAGES: Record<LinkPageKind, { vi: [string, string]; en: [string, string] }> = {
  unknown: {
    vi: ['Liên kết không tồn tại', 'Liên kết này không đúng hoặc đã bị gõ sai. Hãy quét lại mã QR trên phiếu kết quả, hoặc liên hệ bệnh viện.'],
    en: ['This link does not exist', 'The link is not valid or was mistyped. Scan the QR code on your result slip again, or contact the hospital.'],
  },
  expired: {
    vi: ['Liên kết đã hết hạn', 'Liên kết xem kết quả này đã hết hạn. Hãy liên hệ bệnh viện để được cấp liên kết mới.'],
    en: ['This link has expired', 'This results link has expired. Contact the hospital for a new one.'],
  },
  revoked: {
    vi: ['Liên kết đã bị thu hồi', 'Bệnh viện đã thu hồi liên kết xem kết quả này. Hãy liên hệ bệnh viện nếu bạn vẫn cần xem kết quả.'],
    en: ['This link has been revoked', 'The hospital has revoked this results link. Contact the hospital if you still need the results.'],
  },
  'not-built': {
    vi: ['Chưa có trang xem kết quả', 'Trang xem kết quả trên điện thoại chưa được cài đặt trên máy chủ này.'],
    en: ['The results page is not installed', 'The phone results page is not built on this server (npm run build).'],
  },
};

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The page for `kind`, with the hospital's name when configured. */
export function linkPage(kind: LinkPageKind, hospitalName: string): string {
  const page = PAGES[kind];
  const hospital = hospitalName === '' ? '' : `<p class="hospital">${escape(hospitalName)}</p>`;
  return `<!doctype html>
<html lang="vi">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex">
<title>${escape(page.vi[0])} · ${escape(page.en[0])}</title>
<style>body{font-family:system-ui,sans-serif;margin:0;padding:2rem 1.25rem;max-width:32rem;color:#1d2733}h1{font-size:1.3rem;margin:.2rem 0}p{line-height:1.5}.hospital{color:#5a6470;font-weight:600}section+section{border-top:1px solid #d5dae0;margin-top:1.5rem;padding-top:1rem}</style>
</head>
<body>
${hospital}<section lang="vi"><h1>${escape(page.vi[0])}</h1><p>${escape(page.vi[1])}</p></section>
<section lang="en"><h1>${escape(page.en[0])}</h1><p>${escape(page.en[1])}</p></section>
</body>
</html>
`;
}
